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
  description = "KMS key that encrypts the table."
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the table (terraform destroy then fails until it is turned off)."
  default     = false
}
