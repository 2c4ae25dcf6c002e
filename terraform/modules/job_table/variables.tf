variable "table_name" {
  type        = string
  description = "Name of the job table."

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.table_name))
    error_message = "table_name must be 3-255 characters of letters, digits, '_', '-' and '.'."
  }
}

variable "status_index_name" {
  type        = string
  description = "Name of the GSI on PHASE/CREATED_AT (the contract fixes it as phase-index)."
  default     = "phase-index"
}

variable "batch_index_name" {
  type        = string
  description = "Name of the GSI on BATCH_ID/CREATED_AT (the contract fixes it as batch-index)."
  default     = "batch-index"
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the table; null: the service's AWS managed or AWS owned key (flock.yaml encryption.kms_key: aws_managed)."
  default     = null
}

variable "use_kms_key" {
  type        = bool
  description = "Whether kms_key_arn is set, known at plan time even before the key exists (null: kms_key_arn != null)."
  default     = null
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the table (terraform destroy then fails until it is turned off)."
  default     = false
}
