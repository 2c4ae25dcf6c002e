output "queue_url" {
  description = "URL of the scheduler queue."
  value       = aws_sqs_queue.this.id
}

output "queue_arn" {
  description = "ARN of the scheduler queue."
  value       = aws_sqs_queue.this.arn
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dead_letter.id
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dead_letter.arn
}

output "function_name" {
  description = "Name of the scheduler function."
  value       = module.function.function_name
}

output "function_arn" {
  description = "ARN of the scheduler function."
  value       = module.function.function_arn
}

output "log_group_arn" {
  description = "ARN of the function's log group."
  value       = module.function.log_group_arn
}

output "event_source_mapping_uuid" {
  description = "Id of the SQS event source mapping."
  value       = aws_lambda_event_source_mapping.this.uuid
}
