variable "name" {
  type        = string
  description = "Flock name: generated bucket names start with <name>-<role>-."
}

variable "bucket_names" {
  type = object({
    inputs       = optional(string)
    outputs      = optional(string)
    errors       = optional(string)
    quick_deploy = optional(string)
  })
  description = "Exact bucket names; a null one is generated from bucket_prefix <name>-<role>-."
  default     = {}
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts every object (SSE-KMS with a bucket key); null: the service's AWS managed or AWS owned key (flock.yaml encryption.kms_key: aws_managed)."
  default     = null
}

variable "use_kms_key" {
  type        = bool
  description = "Whether kms_key_arn is set, known at plan time even before the key exists (null: kms_key_arn != null)."
  default     = null
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete buckets that still hold objects."
  default     = false
}

variable "create_lustre_bucket" {
  type        = bool
  description = "Create the Lustre data bucket (Lustre is created without an existing bucket)."
  default     = false
}

variable "lustre_bucket_name" {
  type        = string
  description = "Name of the Lustre data bucket; null generates <name>-lustre-."
  default     = null
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days after which noncurrent versions in the inputs and errors buckets expire."
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "access_logs_bucket" {
  type        = string
  description = "Bucket that receives S3 server access logs of every flock bucket; null turns logging off."
  default     = null
}

variable "enforce_tls" {
  type        = bool
  description = "Give every bucket a policy that denies requests without TLS (aws:SecureTransport false)."
  default     = true
}

variable "lifecycle_rules" {
  type        = bool
  description = "Give every bucket lifecycle rules: abort incomplete multipart uploads, expire noncurrent versions of inputs and errors."
  default     = true
}
