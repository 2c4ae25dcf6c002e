output "bucket_names" {
  description = "Bucket name by role: inputs, outputs, errors, quick-deploy (and lustre when made)."
  value       = { for role, bucket in aws_s3_bucket.this : role => bucket.bucket }
}

output "bucket_arns" {
  description = "Bucket ARN by role."
  value       = { for role, bucket in aws_s3_bucket.this : role => bucket.arn }
}

output "inputs_bucket" {
  description = "Name of the inputs bucket (zip drops start jobs)."
  value       = aws_s3_bucket.this["inputs"].bucket
}

output "outputs_bucket" {
  description = "Name of the outputs bucket."
  value       = aws_s3_bucket.this["outputs"].bucket
}

output "errors_bucket" {
  description = "Name of the errors bucket."
  value       = aws_s3_bucket.this["errors"].bucket
}

output "quick_deploy_bucket" {
  description = "Name of the quick-deploy bucket."
  value       = aws_s3_bucket.this["quick-deploy"].bucket
}

output "lustre_bucket" {
  description = "Name of the Lustre data bucket, null when not created here."
  value       = try(aws_s3_bucket.this["lustre"].bucket, null)
}

output "lustre_bucket_arn" {
  description = "ARN of the Lustre data bucket, null when not created here."
  value       = try(aws_s3_bucket.this["lustre"].arn, null)
}
