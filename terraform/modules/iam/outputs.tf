output "scheduler_role_arn" {
  description = "Role of the scheduler Lambda, available once its policy is in place (the event source mapping checks the role's SQS rights)."
  value       = aws_iam_role.scheduler.arn
  depends_on  = [aws_iam_role_policy.scheduler]
}

output "api_role_arn" {
  description = "Role of the API Lambda."
  value       = aws_iam_role.api.arn
}

output "job_role_arn" {
  description = "Role of the Batch jobs."
  value       = aws_iam_role.job.arn
}

output "instance_profile_arn" {
  description = "Instance profile of the sheep, available once its managed policy is attached."
  value       = aws_iam_instance_profile.sheep.arn
  depends_on  = [aws_iam_role_policy_attachment.sheep]
}

output "batch_service_role_arn" {
  description = "Custom service role of the compute environments, null unless create_batch_service_role (null: Batch's service-linked role). Available once AWSBatchServiceRole is attached, so environments are deleted before it is detached."
  value       = try(aws_iam_role.batch_service[0].arn, null)
  depends_on  = [aws_iam_role_policy_attachment.batch_service]
}

output "spot_fleet_role_arn" {
  description = "Spot fleet role, null when not created."
  value       = try(aws_iam_role.spot_fleet[0].arn, null)
  depends_on  = [aws_iam_role_policy_attachment.spot_fleet]
}

output "lambda_table_actions" {
  description = "DynamoDB actions both Lambdas may call on the job table."
  value       = local.lambda_table_actions
}

output "secret_arn_pattern" {
  description = "ARN pattern of the flock's secrets: the main one and the parts secretify adds (<secret_name>-*)."
  value       = local.secret_arn_pattern
}

output "events_role_arn" {
  description = "Role of the events Lambda, available once its policy is in place (the event source mapping checks the role's SQS rights)."
  value       = aws_iam_role.events.arn
  depends_on  = [aws_iam_role_policy.events]
}
