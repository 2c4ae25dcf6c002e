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
  description = "KMS key that encrypts the images; null: the service's AWS managed or AWS owned key (flock.yaml encryption.kms_key: aws_managed)."
  default     = null
}

variable "use_kms_key" {
  type        = bool
  description = "Whether kms_key_arn is set, known at plan time even before the key exists (null: kms_key_arn != null)."
  default     = null
}

variable "keep_images" {
  type        = number
  description = "How many images of each tag prefix (payload-, worker-) the lifecycle policy keeps. At least 2: the image before the newest stays for jobs submitted under the previous job definition revision."
  default     = 20

  validation {
    condition     = var.keep_images >= 2 && floor(var.keep_images) == var.keep_images
    error_message = "keep_images must be a whole number of at least 2 (the newest image and the one before it, which jobs submitted before the last deploy may still pull)."
  }
}

variable "tag_prefixes" {
  type        = list(string)
  description = "Tag prefixes whose newest keep_images images are kept, each counted apart (deploy tags payload images payload-<...> and worker images worker-<...>)."
  default     = ["payload-", "worker-"]

  validation {
    condition     = length(var.tag_prefixes) >= 1 && length(distinct(var.tag_prefixes)) == length(var.tag_prefixes) && alltrue([for p in var.tag_prefixes : can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]*$", p))])
    error_message = "tag_prefixes must be distinct, non-empty image tag prefixes."
  }
}

variable "protected_tags" {
  type        = list(string)
  description = "Tags whose image is never expired: the ones job definitions use (payload-latest, worker-latest, or the pinned tags deploy passes as images)."
  default     = ["payload-latest", "worker-latest"]

  validation {
    condition     = alltrue([for t in var.protected_tags : can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", t))])
    error_message = "protected_tags must be image tags (letters, digits, '_', '.', '-', at most 128 characters, no wildcard)."
  }
}

variable "untagged_expire_days" {
  type        = number
  description = "Days after its push an untagged image expires."
  default     = 1

  validation {
    condition     = var.untagged_expire_days >= 1 && floor(var.untagged_expire_days) == var.untagged_expire_days
    error_message = "untagged_expire_days must be a whole number of at least 1."
  }
}

variable "force_delete" {
  type        = bool
  description = "Let terraform destroy delete the repository while it still holds images."
  default     = false
}
