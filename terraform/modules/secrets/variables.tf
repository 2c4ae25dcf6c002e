variable "name" {
  type        = string
  description = "Flock name (for the description)."
}

variable "secret_name" {
  type        = string
  description = "Name of the Secrets Manager secret."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the secret; null: the service's AWS managed or AWS owned key (flock.yaml encryption.kms_key: aws_managed)."
  default     = null
}

variable "use_kms_key" {
  type        = bool
  description = "Whether kms_key_arn is set, known at plan time even before the key exists (null: kms_key_arn != null)."
  default     = null
}

variable "recovery_window_in_days" {
  type        = number
  description = "Days a deleted secret can be restored: 0 deletes at once (the name is free again), else 7 to 30."
  default     = 7

  validation {
    condition     = var.recovery_window_in_days == 0 || (var.recovery_window_in_days >= 7 && var.recovery_window_in_days <= 30)
    error_message = "recovery_window_in_days must be 0 or between 7 and 30."
  }
}
