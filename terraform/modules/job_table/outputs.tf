output "table_name" {
  description = "Name of the job table."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "ARN of the job table."
  value       = aws_dynamodb_table.this.arn
}

output "status_index_name" {
  description = "Name of the GSI on PHASE/CREATED_AT."
  value       = var.status_index_name
}

output "status_index_arn" {
  description = "ARN of the GSI (for IAM policies that query it)."
  value       = "${aws_dynamodb_table.this.arn}/index/${var.status_index_name}"
}

output "batch_index_name" {
  description = "Name of the GSI on BATCH_ID/CREATED_AT."
  value       = var.batch_index_name
}

output "batch_index_arn" {
  description = "ARN of the batch GSI (for IAM policies that query it)."
  value       = "${aws_dynamodb_table.this.arn}/index/${var.batch_index_name}"
}
