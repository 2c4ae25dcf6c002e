output "key_arn" {
  description = "ARN of the flock's KMS key, known once its key policy is in place (CloudWatch Logs and S3 notifications need the policy's grants when the resources using the key are created); null when create is false (AWS managed keys)."
  value       = var.create ? aws_kms_key.this[0].arn : null
  depends_on  = [aws_kms_key_policy.this]
}

output "key_id" {
  description = "Id of the flock's KMS key; null when create is false."
  value       = var.create ? aws_kms_key.this[0].key_id : null
}

output "alias_name" {
  description = "Alias of the key; null when create is false."
  value       = var.create ? aws_kms_alias.this[0].name : null
}

output "account_id" {
  description = "Account that owns the key (read from its ARN); null when create is false."
  value       = local.account_id
}

output "key_policy_id" {
  description = "Id of the key policy: depend on it before creating encrypted log groups; null when create is false."
  value       = var.create ? aws_kms_key_policy.this[0].id : null
}
