variable "create" {
  type        = bool
  description = "Create the flock's customer managed key (flock.yaml encryption.kms_key: flock). False: no key; the flock's resources use their services' AWS managed or AWS owned keys."
  default     = true
}

variable "name" {
  type        = string
  description = "Flock name; the key's alias is alias/shepard-<name>."
}

variable "region" {
  type        = string
  description = "Region of the flock (CloudWatch Logs' service principal is regional)."
}

variable "log_group_prefixes" {
  type        = list(string)
  description = "CloudWatch Logs may encrypt with the key only log groups whose names start with one of these prefixes (the Lambdas' /aws/lambda/<name>- and the jobs' /aws/batch/<name>)."

  validation {
    condition     = length(var.log_group_prefixes) >= 1 && alltrue([for p in var.log_group_prefixes : startswith(p, "/")])
    error_message = "log_group_prefixes must name at least one prefix, each starting with '/'."
  }
}

variable "s3_notification_bucket_arns" {
  type        = list(string)
  description = "Buckets whose event notifications S3 sends to queues encrypted with the key (the inputs bucket); empty for none."
  default     = []
}

variable "deletion_window_in_days" {
  type        = number
  description = "Days a scheduled key deletion waits (7 to 30)."
  default     = 7

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the key (the provider's default_tags are added)."
  default     = {}
}

variable "eventbridge_rule_names" {
  type        = list(string)
  description = "Names of the EventBridge rules (default event bus) that send to queues encrypted with the key (the flock's Batch job events rule); empty for none. Names, not ARNs: the rules' queues need the key first."
  default     = []
}
