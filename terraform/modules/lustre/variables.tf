variable "create" {
  type        = bool
  description = "Create the Lustre file system."
  default     = false
}

variable "file_system_name" {
  type        = string
  description = "Name tag of the file system."
}

variable "storage_capacity_gib" {
  type        = number
  description = "Capacity in GiB: 1200, 2400, or a multiple of 2400."
  default     = 1200

  validation {
    condition     = var.storage_capacity_gib == 1200 || (var.storage_capacity_gib >= 2400 && var.storage_capacity_gib % 2400 == 0)
    error_message = "storage_capacity_gib must be 1200, 2400, or a multiple of 2400."
  }
}

variable "deployment_type" {
  type        = string
  description = "SCRATCH_1, SCRATCH_2 or PERSISTENT_1 (these support import/export paths)."
  default     = "SCRATCH_2"

  validation {
    condition     = contains(["SCRATCH_1", "SCRATCH_2", "PERSISTENT_1"], var.deployment_type)
    error_message = "deployment_type must be one of SCRATCH_1, SCRATCH_2, PERSISTENT_1."
  }
}

variable "per_unit_storage_throughput" {
  type        = number
  description = "MB/s per TiB for PERSISTENT_1 (50, 100 or 200)."
  default     = 50

  validation {
    condition     = contains([50, 100, 200], var.per_unit_storage_throughput)
    error_message = "per_unit_storage_throughput must be 50, 100 or 200."
  }
}

variable "bucket_name" {
  type        = string
  description = "S3 bucket imported into (and exported to) the file system."
  default     = null
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for PERSISTENT file systems; null: the service's AWS managed or AWS owned key (flock.yaml encryption.kms_key: aws_managed)."
  default     = null
}

variable "subnet_id" {
  type        = string
  description = "Subnet of the file system."
  default     = null
}

variable "security_group_id" {
  type        = string
  description = "Security group (the sheep group, which allows Lustre ports within itself)."
}
