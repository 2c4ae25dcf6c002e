variable "name" {
  type        = string
  description = "Flock name: the function is <name>-events, the queue <name>-batch-events, the rule <name>-batch-job-state."
}

variable "job_queue_arns" {
  type        = list(string)
  description = "ARNs of the flock's job queues: only their jobs' events are delivered."

  validation {
    condition     = length(var.job_queue_arns) > 0
    error_message = "job_queue_arns must name at least one job queue."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for the queues, the topic, the log group and the function's environment; null: the service's AWS managed or AWS owned key (flock.yaml encryption.kms_key: aws_managed)."
  default     = null
}

variable "use_kms_key" {
  type        = bool
  description = "Whether kms_key_arn is set, known at plan time even before the key exists (null: kms_key_arn != null)."
  default     = null
}

variable "role_arn" {
  type        = string
  description = "Role of the function."
}

variable "zip_path" {
  type        = string
  description = "Path of the function's zip (built by shepard.package)."
}

variable "max_receive_count" {
  type        = number
  description = "Deliveries of an event before it moves to the dead-letter queue."
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "lambda_memory_mib" {
  type        = number
  description = "Memory of the function in MiB."
  default     = 256
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
}

variable "environment" {
  type        = map(string)
  description = "Environment of the function (docs/contracts.md section 3); the topic's ARN is added when there is one."
}

variable "create_delivery" {
  type        = bool
  description = "Create the rule, the queues and the event source mapping that bring Batch's events to the function; false where something else hands them to the handler (the local flock's executor, in-process: moto's Batch sends no events)."
  default     = true
}

variable "enable_event_source_mapping" {
  type        = bool
  description = "Let Lambda poll the queue; false where something else delivers the events, as the local flock does."
  default     = true
}

variable "notification_emails" {
  type        = list(string)
  description = "E-mail addresses subscribed to the notifications topic (each confirms by e-mail); with notification_https_endpoints empty too, no topic is made."
  default     = []

  validation {
    condition     = alltrue([for a in var.notification_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", a))])
    error_message = "notification_emails must be e-mail addresses."
  }
}

variable "notification_https_endpoints" {
  type        = list(string)
  description = "HTTPS URLs subscribed to the notifications topic (each must confirm the subscription)."
  default     = []

  validation {
    condition     = alltrue([for u in var.notification_https_endpoints : startswith(u, "https://")])
    error_message = "notification_https_endpoints must be https:// URLs."
  }
}
