output "function_name" {
  description = "Name of the events function."
  value       = module.function.function_name
}

output "log_group_arn" {
  description = "ARN of the events function's log group."
  value       = module.function.log_group_arn
}

output "queue_arn" {
  description = "ARN of the queue the rule sends Batch's events to; null without delivery."
  value       = try(aws_sqs_queue.this[0].arn, null)
}

output "queue_url" {
  description = "URL of the queue the rule sends Batch's events to."
  value       = try(aws_sqs_queue.this[0].id, null)
}

output "dead_letter_queue_url" {
  description = "URL of the events' dead-letter queue."
  value       = try(aws_sqs_queue.dead_letter[0].id, null)
}

output "rule_arn" {
  description = "ARN of the EventBridge rule on the flock's job queues."
  value       = try(aws_cloudwatch_event_rule.batch_jobs[0].arn, null)
}

output "topic_arn" {
  description = "ARN of the notifications topic; null when the flock has no notifications."
  value       = try(aws_sns_topic.notifications[0].arn, null)
}
