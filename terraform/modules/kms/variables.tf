variable "name" {
  type        = string
  description = "Flock name; the key's alias is alias/shepard-<name>."
}

variable "region" {
  type        = string
  description = "Region of the flock (CloudWatch Logs' service principal is regional)."
}

variable "log_group_prefix" {
  type        = string
  description = "Only log groups whose names start with this prefix may be encrypted with the key by CloudWatch Logs."
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
