# The variables of a flock: docs/contracts.md section 1. `shepard-tf render` writes them as
# flock.auto.tfvars.json; a hand-written tfvars file only needs name, region and batch (the Lambda
# packages are kept in lambda/, so this folder plus a tfvars file is a whole configuration).

variable "name" {
  type        = string
  description = "Name of the flock: lowercase letter first, then 1-30 lowercase letters, digits or '-'."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must match ^[a-z][a-z0-9-]{1,30}$ (e.g. \"my-flock\")."
  }
}

variable "region" {
  type        = string
  description = "AWS region of the flock."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "region must be an AWS region such as us-east-1."
  }
}

variable "resource_tags" {
  type        = map(string)
  description = "Tags on every resource of the flock (shepard:flock = name is added)."
  default     = {}
}

variable "instance_tags" {
  type = object({
    project       = optional(string)
    team          = optional(string)
    contact       = optional(string)
    workload_type = optional(string)
  })
  description = "Project, Team, Contact and WorkloadType tags of the sheep."
  default     = {}
}

variable "allow_docker_daemon" {
  type        = bool
  description = "Let payload containers use the host's Docker daemon (privileged)."
  default     = false
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
    # Minutes between uploads of a running job's CHECKPOINT_DIR (0: only on an interruption).
    checkpoint_interval_minutes = optional(number, 0)
  })
  description = "Resources, timeout, retries and nofile limit of every job."
  default     = {}
}

variable "buckets" {
  type = object({
    inputs       = optional(string)
    outputs      = optional(string)
    errors       = optional(string)
    quick_deploy = optional(string)
  })
  description = "Bucket names; a null one is generated with bucket_prefix <name>-<role>-."
  default     = {}
}

variable "force_destroy_buckets" {
  type        = bool
  description = "Let destroy delete buckets with objects, the registry with images, and the secret at once."
  default     = false
}

variable "table" {
  type = object({
    name                               = optional(string)
    days_to_keep_failed_launch_indexes = optional(number, 2)
    days_to_keep_finished_jobs         = optional(number, 30)
  })
  description = "The job table: its name (default <name>-jobs) and how long records are kept."
  default     = {}

  validation {
    condition     = var.table.days_to_keep_failed_launch_indexes >= 0 && var.table.days_to_keep_finished_jobs >= 0
    error_message = "table.days_to_keep_failed_launch_indexes and table.days_to_keep_finished_jobs must be 0 or more."
  }
}

variable "secret_name" {
  type        = string
  description = "Name of the Secrets Manager secret; null gives <name>-secrets."
  default     = null
}

variable "ecr" {
  type = object({
    repository_name = optional(string)
    keep_images     = optional(number, 20)
  })
  description = "The ECR repository: its name (default <name>) and how many images are kept."
  default     = {}
}

variable "images" {
  type = object({
    payload = optional(string)
    worker  = optional(string)
  })
  description = "Images of the payload and the worker; null ones are <repository url>:payload-latest and :worker-latest."
  default     = {}
}

variable "batch" {
  type = object({
    instance_name        = optional(string)
    launch_template_name = optional(string)
    queue_name           = optional(string)
    job_definition_name  = optional(string)
    ec2_key_pair         = optional(string)
    max_vcpus            = optional(number, 256)
    # A job stuck RUNNABLE this long (no environment can run it, or no capacity) is cancelled;
    # null never cancels.
    runnable_timeout_seconds = optional(number, 3600)
    # Minutes running jobs get to finish when an update replaces the sheep.
    update_job_timeout_minutes = optional(number, 30)
    # Retention of the jobs' log group /aws/batch/<name>.
    log_retention_days = optional(number, 30)
    compute_environments = map(object({
      order          = number
      type           = string
      instance_types = list(string)
      bid_percentage = optional(number)
      gpu            = optional(bool, false)
      min_vcpus      = optional(number, 0)
      max_vcpus      = optional(number)
      name           = optional(string)
    }))
  })
  description = "Sheep, compute environments (by short name; the queue tries them in ascending order; `name` is the prefix of the generated name), queue, job definition and the jobs' log group."

  validation {
    condition     = alltrue([for ce in values(var.batch.compute_environments) : contains(["EC2", "SPOT"], ce.type)])
    error_message = "batch.compute_environments.*.type must be \"EC2\" or \"SPOT\"."
  }

  validation {
    condition     = alltrue([for ce in values(var.batch.compute_environments) : ce.type != "SPOT" || ce.bid_percentage != null])
    error_message = "A SPOT compute environment needs bid_percentage (1-100: the most it pays, as a percentage of the on-demand price)."
  }
}

variable "retries" {
  type = object({
    # Spot reclaims a job takes before it moves to the on-demand queue (0: no ladder).
    spot_attempts = optional(number, 0)
    # Create the second job queue over the on-demand environments (needs SPOT and EC2 ones).
    on_demand_queue = optional(bool, false)
    # Each out-of-memory retry multiplies the job's memory by this (0: no such retry) ...
    oom_factor = optional(number, 0)
    # ... up to this many MiB (the largest instance's usable memory, or the flock's cap).
    oom_max_memory_mib = optional(number, 0)
  })
  description = "Retries after a failure that shepard makes (shepard.joblayer.retry): the ladder from Spot to on-demand and out-of-memory retries with more memory."
  default     = {}

  validation {
    condition     = var.retries.spot_attempts >= 0 && var.retries.oom_max_memory_mib >= 0 && (var.retries.oom_factor == 0 || var.retries.oom_factor >= 2)
    error_message = "retries.spot_attempts and retries.oom_max_memory_mib must be 0 or more, and retries.oom_factor 0 (off) or at least 2."
  }
}

variable "ebs" {
  type = object({
    root_size_gib              = optional(number, 30)
    container_storage_size_gib = optional(number, 50)
  })
  description = "Sizes of the sheep's encrypted root and container-storage volumes."
  default     = {}
}

variable "efs" {
  type = object({
    create            = optional(bool, false)
    name              = optional(string)
    throughput_mode   = optional(string, "bursting")
    provisioned_mibps = optional(number)
  })
  description = "An EFS file system mounted at /mnt/efs on every sheep."
  default     = {}

  validation {
    condition     = var.efs.throughput_mode != "provisioned" || var.efs.provisioned_mibps != null
    error_message = "efs.throughput_mode = \"provisioned\" needs efs.provisioned_mibps."
  }
}

variable "lustre" {
  type = object({
    create               = optional(bool, false)
    name                 = optional(string)
    storage_capacity_gib = optional(number, 1200)
    bucket_name          = optional(string)
    existing_bucket      = optional(string)
    deployment_type      = optional(string, "SCRATCH_2")
  })
  description = "An FSx for Lustre file system mounted at /mnt/fsx, backed by a new or an existing bucket."
  default     = {}

  validation {
    condition     = var.lustre.bucket_name == null || var.lustre.existing_bucket == null
    error_message = "Set lustre.bucket_name (a bucket to create) or lustre.existing_bucket (one to use), not both."
  }
}

variable "sqs" {
  type = object({
    name                       = optional(string)
    max_receive_count          = optional(number, 5)
    visibility_timeout_seconds = optional(number, 180)
    # The scheduler's event source mapping (flock.yaml scheduler.*): zip drops per invocation,
    # fanned in to one array job, and the seconds the queue gathers them.
    batch_size              = optional(number, 100)
    batching_window_seconds = optional(number, 1)
  })
  description = "The scheduler queue (default name <name>-jobs)."
  default     = {}
}

variable "lambda" {
  type = object({
    memory_mib         = optional(number, 256)
    timeout_seconds    = optional(number, 60)
    scheduler_zip      = optional(string)
    api_zip            = optional(string)
    events_zip         = optional(string)
    log_retention_days = optional(number, 30)
  })
  description = "The Lambdas: memory, timeout, log retention; scheduler_zip, api_zip and events_zip replace the packages kept in lambda/ (built by shepard.package)."
  default     = {}
}

variable "extra_iam_policy_json" {
  type        = string
  description = "An IAM policy document (JSON text) added to the job role."
  default     = null
}

variable "network" {
  type = object({
    create_vpc           = optional(bool, true)
    environment_name     = optional(string)
    vpc_cidr             = optional(string, "10.0.0.0/16")
    public_subnet_cidrs  = optional(list(string))
    private_subnet_cidrs = optional(list(string))
    make_subnets_public  = optional(bool)
    allow_ssh            = optional(bool, false)
    ssh_cidr             = optional(string)
    existing_vpc_id      = optional(string)
    existing_vpc_cidr    = optional(string)
    existing_subnet_ids  = optional(list(string), [])

    # "public", "nat" or "private" (docs/decisions/0009-network-mode.md); null: "public", or
    # "nat" when make_subnets_public is false (the seed's way of asking for private sheep).
    mode = optional(string)
  })
  description = "A new VPC, or an existing VPC and subnets; SSH access to the sheep."
  default     = {}

  validation {
    condition     = var.network.create_vpc || (var.network.existing_vpc_id != null && length(var.network.existing_subnet_ids) >= 1)
    error_message = "network.create_vpc = false needs network.existing_vpc_id and at least one of network.existing_subnet_ids."
  }

  validation {
    condition     = var.network.mode == null || contains(["public", "nat", "private"], coalesce(var.network.mode, "public"))
    error_message = "network.mode must be \"public\", \"nat\" or \"private\"."
  }

  validation {
    condition     = !var.network.allow_ssh || var.network.ssh_cidr != null
    error_message = "network.allow_ssh = true needs network.ssh_cidr (the CIDR allowed to SSH in, e.g. 203.0.113.0/24)."
  }

  validation {
    condition     = var.network.ssh_cidr != "0.0.0.0/0"
    error_message = "network.ssh_cidr must not be 0.0.0.0/0: name the addresses that may SSH to the sheep."
  }
}

variable "aws_provider" {
  type = object({
    max_retries                 = optional(number)
    skip_credentials_validation = optional(bool, false)
    skip_requesting_account_id  = optional(bool, false)
    allowed_account_ids         = optional(list(string))
    s3_use_path_style           = optional(bool, false)
  })
  description = "Settings of the AWS provider (an emulator and offline plans set them; an emulator reached as localhost needs s3_use_path_style)."
  default     = {}
}

variable "availability_zones" {
  type        = list(string)
  description = "AZs of a new VPC's subnets, one per subnet; null looks up the first 2 available zones of the region (an offline plan must give them)."
  default     = null
}

# What an emulator cannot do, each on by default (the secure AWS value). The local flock turns them
# off in its own overlay (<state>/local.auto.tfvars.json); nothing else should.

variable "enforce_tls" {
  type        = bool
  description = "Buckets deny every request not made over TLS (aws:SecureTransport)."
  default     = true
}

variable "s3_lifecycle_rules" {
  type        = bool
  description = "Buckets expire old objects and incomplete uploads with lifecycle rules."
  default     = true
}

variable "create_nat_gateway" {
  type        = bool
  description = "Private subnets reach the internet through a NAT gateway (never with public subnets or an existing VPC)."
  default     = true
}

variable "enable_event_source_mapping" {
  type        = bool
  description = "The scheduler queue's event source mapping to the scheduler Lambda is enabled."
  default     = true
}

variable "pin_launch_template_version" {
  type        = bool
  description = "Compute environments pin the launch template's latest version (false: $Default)."
  default     = true
}

variable "create_batch_service_role" {
  type        = bool
  description = "Create a custom Batch service role for the compute environments; false uses Batch's service-linked role, which AWS needs for in-place updates (moto needs a custom one)."
  default     = false
}

variable "efs_file_system_policy" {
  type        = bool
  description = "The EFS file system gets its policy (access through mount targets only, over TLS only). moto cannot delete one (DeleteFileSystemPolicy answers 500), so the emulator leaves it out."
  default     = true
}

variable "cancel_stuck_jobs" {
  type        = bool
  description = "The job queue cancels a job stuck RUNNABLE (no capacity, or no environment that can run it) after batch.runnable_timeout_seconds (job_state_time_limit_action; moto drops it, so every plan would show it again)."
  default     = true
}

variable "compute_environment_update_policy" {
  type        = bool
  description = "Compute environments carry an update_policy (running jobs get batch.update_job_timeout_minutes when an update replaces the sheep; moto drops it, so every plan would show it again)."
  default     = true
}

variable "batch_events_delivery" {
  type        = bool
  description = "Batch's job state events reach the events Lambda through an EventBridge rule and an SQS queue; false where something else hands them to the handler (the local flock's executor, in-process: moto's Batch sends no events, and the queue's chain adds about 50 s to an emulator apply)."
  default     = true
}

variable "notifications" {
  type = object({
    emails          = optional(list(string), [])
    https_endpoints = optional(list(string), [])
  })
  description = "Subscribers of the flock's SNS topic (KMS-encrypted), told when a job fails and when a batch completes; no topic when both lists are empty."
  default     = {}

  validation {
    condition     = alltrue([for a in var.notifications.emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", a))])
    error_message = "notifications.emails must be e-mail addresses."
  }

  validation {
    condition     = alltrue([for u in var.notifications.https_endpoints : startswith(u, "https://")])
    error_message = "notifications.https_endpoints must be https:// URLs."
  }
}

variable "flock_kms_key" {
  type        = bool
  description = "flock.yaml encryption.kms_key: true (flock) creates the flock's customer managed KMS key and encrypts every resource with it; false (aws_managed, the default) creates no key and each service encrypts at rest with its AWS managed or AWS owned key."
  default     = false
}
