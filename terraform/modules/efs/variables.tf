variable "create" {
  type        = bool
  description = "Create the EFS file system."
  default     = false
}

variable "file_system_policy" {
  type        = bool
  description = "Attach the file-system policy (mount targets only, TLS only). moto cannot delete one, so the emulator leaves it out."
  default     = true
}

variable "file_system_name" {
  type        = string
  description = "Name tag and creation token of the file system."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the file system; null: the service's AWS managed or AWS owned key (flock.yaml encryption.kms_key: aws_managed)."
  default     = null
}

variable "throughput_mode" {
  type        = string
  description = "bursting, provisioned or elastic."
  default     = "bursting"

  validation {
    condition     = contains(["bursting", "provisioned", "elastic"], var.throughput_mode)
    error_message = "throughput_mode must be one of bursting, provisioned, elastic."
  }
}

variable "provisioned_mibps" {
  type        = number
  description = "Throughput in MiB/s when throughput_mode is provisioned."
  default     = null

  validation {
    condition     = var.provisioned_mibps == null || try(var.provisioned_mibps >= 1, false)
    error_message = "provisioned_mibps must be at least 1."
  }
}

variable "subnets" {
  type        = map(string)
  description = "One sheep subnet per zone that gets a mount target, keyed by zone name (or any key known at plan time)."
  default     = {}
}

variable "security_group_id" {
  type        = string
  description = "Security group of the mount targets (the sheep group, which allows NFS within itself)."
}
