output "job_queue_name" {
  description = "Name of the job queue."
  value       = aws_batch_job_queue.this.name
}

output "job_queue_arn" {
  description = "ARN of the job queue."
  value       = aws_batch_job_queue.this.arn
}

output "on_demand_job_queue_name" {
  description = "Name of the on-demand job queue of the ladder; null when there is none."
  value       = one(aws_batch_job_queue.on_demand[*].name)
}

output "on_demand_job_queue_arn" {
  description = "ARN of the on-demand job queue of the ladder; null when there is none."
  value       = one(aws_batch_job_queue.on_demand[*].arn)
}

output "job_definition_name" {
  description = "Name of the job definition."
  value       = aws_batch_job_definition.this.name
}

output "job_definition_arn" {
  description = "ARN of the job definition's current revision."
  value       = aws_batch_job_definition.this.arn
}

output "job_definition_arn_prefix" {
  description = "ARN of the job definition without its revision."
  value       = aws_batch_job_definition.this.arn_prefix
}

output "compute_environment_arns" {
  description = "Compute environment ARN by short name."
  value       = { for k, ce in aws_batch_compute_environment.this : k => ce.arn }
}

output "launch_template_id" {
  description = "Id of the sheep launch template."
  value       = aws_launch_template.sheep.id
}

output "log_group_name" {
  description = "The jobs' log group."
  value       = aws_cloudwatch_log_group.jobs.name
}
