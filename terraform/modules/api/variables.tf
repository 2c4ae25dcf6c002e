variable "name" {
  type        = string
  description = "Flock name: the function is <name>-api."
}

variable "role_arn" {
  type        = string
  description = "Role of the function."
}

variable "zip_path" {
  type        = string
  description = "Path of the function's zip (built by shepard.package)."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for the log group and the function's environment; null: the service's AWS managed or AWS owned key (flock.yaml encryption.kms_key: aws_managed)."
  default     = null
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

variable "environment" {
  type        = map(string)
  description = "Environment of the function (docs/contracts.md section 3)."
}
