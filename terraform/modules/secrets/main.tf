resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:The secret holds the user's files (written by `secretify`), not a credential AWS can rotate.
  name                    = var.secret_name
  description             = "Files that shepard flock ${var.name} puts in ROOT_INPUT_NAME/secrets of every job"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
}

# An empty JSON object so that a job started before `secretify` finds a valid (empty) secret.
# `secretify` writes later versions; Terraform must not put them back to {}.
resource "aws_secretsmanager_secret_version" "initial" {
  secret_id     = aws_secretsmanager_secret.this.id
  secret_string = "{}"

  lifecycle {
    ignore_changes = [secret_string]
  }
}
