variable "name" {
  type        = string
  description = "Flock name: the function is <name>-scheduler, the queue <name>-scheduler by default."
}

variable "queue_name" {
  type        = string
  description = "Name of the SQS queue; null gives <name>-scheduler (the dead-letter queue adds -dlq)."
  default     = null
}

variable "max_receive_count" {
  type        = number
  description = "Deliveries of a message before it moves to the dead-letter queue."
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "visibility_timeout_seconds" {
  type        = number
  description = "Visibility timeout of the queue; raised to 6x the Lambda timeout when lower."
  default     = 180

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be between 0 and 43200."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for the queues, the log group and the function's environment; null: the service's AWS managed or AWS owned key (flock.yaml encryption.kms_key: aws_managed)."
  default     = null
}

variable "use_kms_key" {
  type        = bool
  description = "Whether kms_key_arn is set, known at plan time even before the key exists (null: kms_key_arn != null)."
  default     = null
}

variable "inputs_bucket_name" {
  type        = string
  description = "The inputs bucket whose zip drops are sent to the queue."
}

variable "inputs_bucket_arn" {
  type        = string
  description = "ARN of the inputs bucket (the only sender the queue accepts)."
}

variable "role_arn" {
  type        = string
  description = "Role of the function."
}

variable "zip_path" {
  type        = string
  description = "Path of the function's zip (built by shepard.package)."
}

variable "lambda_memory_mib" {
  type        = number
  description = "Memory of the function in MiB."
  default     = 256

  validation {
    condition     = var.lambda_memory_mib >= 128 && var.lambda_memory_mib <= 10240
    error_message = "lambda_memory_mib must be between 128 and 10240."
  }
}

variable "lambda_timeout_seconds" {
  type        = number
  description = "Timeout of the function in seconds."
  default     = 60

  validation {
    condition     = var.lambda_timeout_seconds >= 1 && var.lambda_timeout_seconds <= 900
    error_message = "lambda_timeout_seconds must be between 1 and 900."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Days the function's logs are kept."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch's values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions of the function; null for none."
  default     = null
}

variable "batch_size" {
  type        = number
  description = "Messages (zip drops) per invocation: they fan in to one Batch array job."
  default     = 100

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be between 1 and 10000."
  }
}

variable "batching_window_seconds" {
  type        = number
  description = "Seconds the event source gathers messages before an invocation with fewer than batch_size (needed above 10)."
  default     = 1

  validation {
    condition     = var.batching_window_seconds >= 0 && var.batching_window_seconds <= 300
    error_message = "batching_window_seconds must be between 0 and 300."
  }
}

variable "environment" {
  type        = map(string)
  description = "Environment of the function (docs/contracts.md section 3)."
}

variable "enable_event_source_mapping" {
  type        = bool
  description = "Let Lambda poll the queue (the event source mapping is enabled); false where something else consumes the queue, as the local flock does."
  default     = true
}
