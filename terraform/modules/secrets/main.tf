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

locals {
  # Known at plan time even when the flock's key is created in the same apply.
  flock_key = var.use_kms_key != null ? var.use_kms_key : var.kms_key_arn != null
  # arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>
  arn_parts = split(":", aws_secretsmanager_secret.this.arn)
  # The secret and every one secretify adds beside it (<secret_name>-part-N).
  name_arn_pattern = "${join(":", slice(local.arn_parts, 0, 6))}:${var.secret_name}-*"
}

# What `shepard-tf secretify` needs (the caller's identity policy): write the flock's secrets,
# create and delete the part secrets, encrypted with the flock's key through Secrets Manager.
data "aws_iam_policy_document" "secretify" {
  statement {
    sid = "FlockSecrets"
    actions = [
      "secretsmanager:CreateSecret",
      "secretsmanager:DeleteSecret",
      "secretsmanager:DescribeSecret",
      "secretsmanager:PutSecretValue",
      "secretsmanager:TagResource",
    ]
    resources = [local.name_arn_pattern]
  }
  # Only with the flock's key: aws/secretsmanager's key policy grants its use through Secrets
  # Manager to the account's principals.
  dynamic "statement" {
    for_each = local.flock_key ? [var.kms_key_arn] : []
    content {
      sid       = "FlockKeyThroughSecretsManager"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.arn_parts[3]}.amazonaws.com"]
      }
    }
  }
}
