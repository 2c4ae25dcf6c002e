output "function_name" {
  description = "Name of the events function."
  value       = module.function.function_name
}

output "log_group_arn" {
  description = "ARN of the events function's log group."
  value       = module.function.log_group_arn
}

output "queue_arn" {
  description = "ARN of the queue the rule sends Batch's events to."
  value       = aws_sqs_queue.this.arn
}

output "queue_url" {
  description = "URL of the queue the rule sends Batch's events to."
  value       = aws_sqs_queue.this.id
}

output "dead_letter_queue_url" {
  description = "URL of the events' dead-letter queue."
  value       = aws_sqs_queue.dead_letter.id
}

output "rule_arn" {
  description = "ARN of the EventBridge rule on the flock's job queues."
  value       = aws_cloudwatch_event_rule.batch_jobs.arn
}

output "topic_arn" {
  description = "ARN of the notifications topic; null when the flock has no notifications."
  value       = try(aws_sns_topic.notifications[0].arn, null)
}
