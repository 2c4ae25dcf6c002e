output "key_arn" {
  description = "ARN of the flock's KMS key, known once its key policy is in place (CloudWatch Logs and S3 notifications need the policy's grants when the resources using the key are created)."
  value       = aws_kms_key.this.arn
  depends_on  = [aws_kms_key_policy.this]
}

output "key_id" {
  description = "Id of the flock's KMS key."
  value       = aws_kms_key.this.key_id
}

output "alias_name" {
  description = "Alias of the key."
  value       = aws_kms_alias.this.name
}

output "account_id" {
  description = "Account that owns the key (read from its ARN)."
  value       = local.account_id
}

output "key_policy_id" {
  description = "Id of the key policy: depend on it before creating encrypted log groups."
  value       = aws_kms_key_policy.this.id
}
