# The outputs of a flock: docs/contracts.md section 2 (read by the CLI as `terraform output -json`).

output "flock_name" {
  description = "Name of the flock."
  value       = var.name
}

output "region" {
  description = "Region of the flock."
  value       = var.region
}

output "account_id" {
  description = "Account of the flock (the ECR registry id; no STS lookup)."
  value       = module.registry.registry_id
}

output "inputs_bucket" {
  description = "Bucket that starts a job for every zip dropped in it."
  value       = module.storage.inputs_bucket
}

output "outputs_bucket" {
  description = "Bucket of the jobs' output zips."
  value       = module.storage.outputs_bucket
}

output "errors_bucket" {
  description = "Bucket of failed jobs' log zips and rejection reports."
  value       = module.storage.errors_bucket
}

output "quick_deploy_bucket" {
  description = "Bucket of quick-deploy folders."
  value       = module.storage.quick_deploy_bucket
}

output "table_name" {
  description = "The job table."
  value       = module.job_table.table_name
}

output "table_status_index" {
  description = "The job table's GSI on PHASE/CREATED_AT."
  value       = module.job_table.status_index_name
}

output "secret_name" {
  description = "The Secrets Manager secret."
  value       = module.secrets.secret_name
}

output "secret_arn" {
  description = "ARN of the secret."
  value       = module.secrets.secret_arn
}

output "ecr_repository_name" {
  description = "The ECR repository."
  value       = module.registry.repository_name
}

output "ecr_repository_url" {
  description = "URL to push the payload and worker images to."
  value       = module.registry.repository_url
}

output "job_queue_name" {
  description = "The Batch job queue."
  value       = module.batch.job_queue_name
}

output "job_queue_arn" {
  description = "ARN of the job queue."
  value       = module.batch.job_queue_arn
}

output "job_definition_name" {
  description = "The Batch job definition."
  value       = module.batch.job_definition_name
}

output "job_definition_arn" {
  description = "ARN of the job definition's current revision."
  value       = module.batch.job_definition_arn
}

output "sqs_queue_url" {
  description = "The scheduler queue."
  value       = module.scheduler.queue_url
}

output "sqs_queue_arn" {
  description = "ARN of the scheduler queue."
  value       = module.scheduler.queue_arn
}

output "dead_letter_queue_url" {
  description = "The scheduler queue's dead-letter queue."
  value       = module.scheduler.dead_letter_queue_url
}

output "scheduler_function_name" {
  description = "The scheduler Lambda."
  value       = module.scheduler.function_name
}

output "api_function_name" {
  description = "The job-batching API Lambda."
  value       = module.api.function_name
}

output "api_endpoint_url" {
  description = "HTTPS URL of the API Lambda (AWS_IAM auth)."
  value       = module.api.endpoint_url
}

output "efs_id" {
  description = "The EFS file system, null when not created."
  value       = module.efs.file_system_id
}

output "lustre_id" {
  description = "The Lustre file system, null when not created."
  value       = module.lustre.file_system_id
}

output "vpc_id" {
  description = "VPC of the sheep."
  value       = module.network.vpc_id
}

output "subnet_ids" {
  description = "Subnets of the sheep."
  value       = module.network.subnet_ids
}

output "security_group_id" {
  description = "Security group of the sheep."
  value       = module.network.security_group_id
}

output "lambda_environment" {
  description = "Environment of both Lambdas (docs/contracts.md section 3)."
  value       = local.lambda_environment
}

output "job_environment" {
  description = "Environment in the job definition (docs/contracts.md section 4)."
  value       = local.job_environment
}

output "cli_profile" {
  description = "A Shepard CLI profile for this flock (seed field names; null ones are the CLI's to fill)."
  value = {
    shepard_account_number                   = module.registry.registry_id
    shepard_role_to_assume_to_target_account = null
    shepard_path_to_deployment_folder        = null
    shepard_ecr_repo_to_push_to              = module.registry.repository_name
    shepard_path_to_local_folder_to_batch    = null
    shepard_s3_bucket_to_upload_to           = module.storage.inputs_bucket
    shepard_dynamo_db_to_query               = module.job_table.table_name
    shepard_cloudformation_stack_name        = var.name
    shepard_path_to_local_secrets            = null
    shepard_secret_store                     = module.secrets.secret_name
    shepard_s3_bucket_for_results            = module.storage.outputs_bucket
    shepard_directory_to_sync_s3_bucket_to   = null
    shepard_lambda_to_invoke                 = module.api.function_name
    shepard_region                           = var.region
    shepard_flock_file                       = null
    shepard_endpoint_url                     = null
    shepard_job_queue                        = module.batch.job_queue_name
    shepard_job_definition                   = module.batch.job_definition_name
    shepard_errors_bucket                    = module.storage.errors_bucket
    shepard_quick_deploy_bucket              = module.storage.quick_deploy_bucket
    shepard_api_endpoint_url                 = module.api.endpoint_url
  }
}
