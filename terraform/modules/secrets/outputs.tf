output "secret_name" {
  description = "Name of the secret."
  value       = aws_secretsmanager_secret.this.name
}

output "secret_arn" {
  description = "ARN of the secret."
  value       = aws_secretsmanager_secret.this.arn
}

output "kms_key_arn" {
  description = "Key of the flock's secrets: secretify creates its part secrets (<secret_name>-part-N) with this KmsKeyId."
  value       = var.kms_key_arn
}

output "name_arn_pattern" {
  description = "ARN pattern of the secret and the parts secretify adds: <secret ARN prefix>:<secret_name>-*."
  value       = local.name_arn_pattern
}

output "secretify_policy_json" {
  description = "Identity policy (JSON) a user needs for secretify: the flock's secrets and the flock key through Secrets Manager."
  value       = data.aws_iam_policy_document.secretify.json
}
