variable "name" {
  type        = string
  description = "Flock name: default names are <name>-sheep, <name>-queue, <name>-job, <name>-<key>-."
}

variable "region" {
  type        = string
  description = "Region of the flock (the jobs' awslogs configuration names it)."
}

variable "pin_launch_template_version" {
  type        = bool
  description = "Compute environments use the launch template's latest version (a changed template rolls the sheep); false uses \"$Default\"."
  default     = true
}

variable "instance_name" {
  type        = string
  description = "Name tag of the sheep; null gives <name>-sheep."
  default     = null
}

variable "launch_template_name" {
  type        = string
  description = "Name of the launch template; null gives <name>-sheep."
  default     = null
}

variable "queue_name" {
  type        = string
  description = "Name of the job queue; null gives <name>-queue."
  default     = null
}

variable "on_demand_queue" {
  type        = bool
  description = "Create the ladder's second job queue over the on-demand (EC2) compute environments; needs both SPOT and EC2 environments."
  default     = false
}

variable "on_demand_queue_name" {
  type        = string
  description = "Name of the on-demand job queue; null gives <queue name>-on-demand."
  default     = null
}

variable "job_definition_name" {
  type        = string
  description = "Name of the job definition; null gives <name>-job."
  default     = null
}

variable "ec2_key_pair" {
  type        = string
  description = "Existing EC2 key pair to SSH into sheep; null for none."
  default     = null
}

variable "max_vcpus" {
  type        = number
  description = "Default max_vcpus of a compute environment."
  default     = 256

  validation {
    condition     = var.max_vcpus >= 1
    error_message = "max_vcpus must be at least 1."
  }
}

variable "compute_environments" {
  type = map(object({
    order          = number
    type           = string
    instance_types = list(string)
    bid_percentage = optional(number)
    gpu            = optional(bool, false)
    min_vcpus      = optional(number, 0)
    max_vcpus      = optional(number)
    name           = optional(string)
  }))
  description = "Compute environments by short name; the job queue tries them in ascending order. `name` is the prefix of the generated name (default <name>-<key>), so an environment can be replaced before the old one goes."

  validation {
    condition     = length(var.compute_environments) >= 1 && length(var.compute_environments) <= 3
    error_message = "compute_environments must have between 1 and 3 entries (a Batch job queue takes at most 3)."
  }

  validation {
    condition     = alltrue([for ce in values(var.compute_environments) : contains(["EC2", "SPOT"], ce.type)])
    error_message = "Each compute environment's type must be \"EC2\" or \"SPOT\"."
  }

  validation {
    condition     = length(distinct([for ce in values(var.compute_environments) : ce.order])) == length(var.compute_environments)
    error_message = "Each compute environment needs its own order (the queue tries them in that order)."
  }

  validation {
    condition = alltrue([
      for ce in values(var.compute_environments) :
      ce.bid_percentage == null ? true : (ce.type == "SPOT" && ce.bid_percentage >= 1 && ce.bid_percentage <= 100)
    ])
    error_message = "bid_percentage is only for SPOT compute environments and must be between 1 and 100."
  }

  validation {
    condition     = alltrue([for ce in values(var.compute_environments) : length(ce.instance_types) >= 1])
    error_message = "Each compute environment needs at least one instance type (or \"optimal\")."
  }

  validation {
    condition     = alltrue([for ce in values(var.compute_environments) : ce.min_vcpus >= 0 && (ce.max_vcpus == null ? true : ce.max_vcpus >= ce.min_vcpus)])
    error_message = "min_vcpus must be at least 0 and not above max_vcpus."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets where sheep run."
}

variable "security_group_id" {
  type        = string
  description = "Security group of the sheep."
}

variable "instance_profile_arn" {
  type        = string
  description = "Instance profile of the sheep."
}

variable "service_role_arn" {
  type        = string
  description = "A custom Batch service role; null (the default, and what AWS needs for in-place updates) uses Batch's service-linked role. Pass an ARN that is only known once its policy is attached."
  default     = null
}

variable "update_job_timeout_minutes" {
  type        = number
  description = "Minutes running jobs get to finish when an infrastructure update replaces the sheep (update_policy); null leaves the update policy out."
  default     = 30

  validation {
    condition     = var.update_job_timeout_minutes == null || try(var.update_job_timeout_minutes >= 1 && var.update_job_timeout_minutes <= 360, false)
    error_message = "update_job_timeout_minutes must be between 1 and 360, or null."
  }
}

variable "runnable_timeout_seconds" {
  type        = number
  description = "Seconds a job may stay RUNNABLE because no compute environment can ever run it or capacity is lacking, before the queue cancels it; null never cancels."
  default     = 3600

  validation {
    condition     = var.runnable_timeout_seconds == null || try(var.runnable_timeout_seconds >= 600 && var.runnable_timeout_seconds <= 86400, false)
    error_message = "runnable_timeout_seconds must be between 600 and 86400 (AWS Batch's limits), or null."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "The flock's KMS key, which encrypts the jobs' log group (its key policy must let CloudWatch Logs use it for that group); null: the service's AWS managed or AWS owned key (flock.yaml encryption.kms_key: aws_managed)."
  default     = null
}

variable "log_retention_days" {
  type        = number
  description = "Days the jobs' log group keeps its events."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch Logs' retention periods: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "tags" {
  type        = map(string)
  description = "The flock's tags, put on the sheep's instances, volumes and network interfaces through the launch template (the provider's default_tags do not reach them)."
  default     = {}
}

variable "spot_fleet_role_arn" {
  type        = string
  description = "Spot fleet role, needed when some compute environment is SPOT."
  default     = null
}

variable "job_role_arn" {
  type        = string
  description = "Role of the jobs."
}

variable "worker_image" {
  type        = string
  description = "Image of the worker that runs every job."
}

variable "job" {
  type = object({
    vcpus                 = optional(number, 2)
    memory_mib            = optional(number, 7000)
    timeout_seconds       = optional(number, 86400)
    retry_attempts        = optional(number, 3)
    retry_on_host_reclaim = optional(bool, true)
    ulimit_nofile         = optional(number, 1048576)
    gpus                  = optional(number, 0)
  })
  description = "Resources, timeout, retries and nofile limit of every job."
  default     = {}

  validation {
    condition     = var.job.vcpus >= 1 && var.job.memory_mib >= 4 && var.job.gpus >= 0
    error_message = "job.vcpus must be at least 1, job.memory_mib at least 4 and job.gpus at least 0."
  }

  validation {
    condition     = var.job.timeout_seconds >= 60
    error_message = "job.timeout_seconds must be at least 60 (AWS Batch's minimum)."
  }

  validation {
    condition     = var.job.retry_attempts >= 1 && var.job.retry_attempts <= 10
    error_message = "job.retry_attempts must be between 1 and 10."
  }

  validation {
    condition     = var.job.ulimit_nofile >= 1024 && var.job.ulimit_nofile <= 1048576 && floor(var.job.ulimit_nofile) == var.job.ulimit_nofile
    error_message = "job.ulimit_nofile must be a whole number between 1024 and 1048576."
  }
}

variable "job_environment" {
  type        = map(string)
  description = "Environment of the job definition (docs/contracts.md section 4)."
}

variable "uses_efs" {
  type        = bool
  description = "Mount /mnt/efs into jobs."
  default     = false
}

variable "uses_lustre" {
  type        = bool
  description = "Mount /mnt/fsx into jobs."
  default     = false
}

variable "efs_dns_name" {
  type        = string
  description = "EFS DNS name that the sheep mount at /mnt/efs; null for none."
  default     = null
}

variable "lustre_dns_name" {
  type        = string
  description = "Lustre DNS name that the sheep mount at /mnt/fsx; null for none."
  default     = null
}

variable "lustre_mount_name" {
  type        = string
  description = "Lustre mount name; null for none."
  default     = null
}

variable "root_volume_gib" {
  type        = number
  description = "Size of the sheep's encrypted root volume."
  default     = 30

  validation {
    condition     = var.root_volume_gib >= 30
    error_message = "root_volume_gib must be at least 30 (the ECS-optimized AMI's snapshot size)."
  }
}

variable "container_storage_gib" {
  type        = number
  description = "Size of the sheep's encrypted container-storage volume (mounted at /mnt/root)."
  default     = 50

  validation {
    condition     = var.container_storage_gib >= 1
    error_message = "container_storage_gib must be at least 1."
  }
}

variable "instance_tags" {
  type        = map(string)
  description = "Project, Team, Contact and WorkloadType tags of the sheep (null values are left out)."
  default     = {}
}
