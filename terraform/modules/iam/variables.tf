variable "name" {
  type        = string
  description = "Flock name: roles are <name>-scheduler, -api, -job, -sheep, -batch-service, -spot-fleet."
}

variable "region" {
  type        = string
  description = "Region of the flock (scopes the secrets' ARN pattern)."
}

variable "account_id" {
  type        = string
  description = "Account of the flock: the trust policies' aws:SourceAccount and the secrets' ARN pattern."
}

variable "kms_key_arn" {
  type        = string
  description = "The flock's KMS key; null: the service's AWS managed or AWS owned key (flock.yaml encryption.kms_key: aws_managed)."
  default     = null
}

variable "use_kms_key" {
  type        = bool
  description = "Whether kms_key_arn is set, known at plan time even before the key exists (null: kms_key_arn != null)."
  default     = null
}

variable "bucket_arns" {
  type        = map(string)
  description = "Bucket ARN by role; needs inputs, outputs, errors and quick-deploy."

  validation {
    condition     = alltrue([for role in ["inputs", "outputs", "errors", "quick-deploy"] : contains(keys(var.bucket_arns), role)])
    error_message = "bucket_arns must have the keys inputs, outputs, errors and quick-deploy."
  }
}

variable "table_arn" {
  type        = string
  description = "ARN of the job table."
}

variable "secret_name" {
  type        = string
  description = "Name of the flock's secret: secretify splits more than 64 KiB into <name>-part-N secrets."
}

variable "secret_arn" {
  type        = string
  description = "ARN of the flock's secret."
}

variable "repository_arn" {
  type        = string
  description = "ARN of the flock's ECR repository."
}

variable "sqs_queue_arn" {
  type        = string
  description = "ARN of the scheduler queue."
}

variable "job_queue_arn" {
  type        = string
  description = "ARN of the Batch job queue."
}

variable "job_definition_arn_prefix" {
  type        = string
  description = "ARN of the job definition without its revision."
}

variable "scheduler_log_group_arn" {
  type        = string
  description = "ARN of the scheduler Lambda's log group."
}

variable "api_log_group_arn" {
  type        = string
  description = "ARN of the API Lambda's log group."
}

variable "extra_iam_policy_json" {
  type        = string
  description = "An IAM policy document (JSON) added to the job role; null for none."
  default     = null

  validation {
    condition     = var.extra_iam_policy_json == null || can(jsondecode(var.extra_iam_policy_json).Statement)
    error_message = "extra_iam_policy_json must be a JSON IAM policy document with a Statement."
  }
}

variable "create_spot_fleet_role" {
  type        = bool
  description = "Create the Spot fleet role (some compute environment is SPOT)."
  default     = false
}

variable "create_batch_service_role" {
  type        = bool
  description = "Create a custom Batch service role (<name>-batch-service). AWS compute environments use the service-linked role instead; the moto emulator needs a custom one."
  default     = false
}

variable "events_queue_arn" {
  type        = string
  description = "ARN of the queue Batch's job state events arrive on (the events Lambda's); null leaves the statement out."
  default     = null
}

variable "events_log_group_arn" {
  type        = string
  description = "ARN of the events Lambda's log group; null leaves the statement out."
  default     = null
}

variable "notifications_topic_arn" {
  type        = string
  description = "ARN of the notifications topic the events Lambda publishes to; null when the flock has none."
  default     = null
}

variable "on_demand_queue" {
  type        = bool
  description = "The flock has the ladder's on-demand job queue: the events Lambda may submit to it (known at plan time, unlike its ARN)."
  default     = false
}

variable "on_demand_job_queue_arn" {
  type        = string
  description = "ARN of the ladder's on-demand job queue; needed when on_demand_queue is true."
  default     = null

  validation {
    condition     = var.on_demand_job_queue_arn == null || can(regex("^arn:[^:]+:batch:[^:]*:[0-9]*:job-queue/.+$", var.on_demand_job_queue_arn))
    error_message = "on_demand_job_queue_arn must be a Batch job queue ARN (arn:aws:batch:<region>:<account>:job-queue/<name>)."
  }
}
