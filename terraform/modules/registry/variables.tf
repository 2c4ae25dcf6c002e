variable "repository_name" {
  type        = string
  description = "Name of the ECR repository for the payload and worker images."

  validation {
    condition     = can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", var.repository_name)) && length(var.repository_name) >= 2 && length(var.repository_name) <= 256
    error_message = "repository_name must be 2-256 lowercase letters, digits and . _ - / (ECR's rule)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the images."
}

variable "keep_images" {
  type        = number
  description = "How many images the lifecycle policy keeps."
  default     = 20

  validation {
    condition     = var.keep_images >= 1 && floor(var.keep_images) == var.keep_images
    error_message = "keep_images must be a whole number of at least 1."
  }
}

variable "force_delete" {
  type        = bool
  description = "Let terraform destroy delete the repository while it still holds images."
  default     = false
}
