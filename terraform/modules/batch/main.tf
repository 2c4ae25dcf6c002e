locals {
  instance_name        = coalesce(var.instance_name, "${var.name}-sheep")
  launch_template_name = coalesce(var.launch_template_name, "${var.name}-sheep")
  queue_name           = coalesce(var.queue_name, "${var.name}-queue")
  job_definition_name  = coalesce(var.job_definition_name, "${var.name}-job")

  # The ladder's second queue: the on-demand (EC2) environments alone, in their order, for jobs
  # Spot reclaimed too often (shepard.joblayer.retry). Only a flock with both kinds has one.
  on_demand_queue_name   = coalesce(var.on_demand_queue_name, "${local.queue_name}-on-demand")
  on_demand_environments = { for k, ce in var.compute_environments : k => ce if ce.type == "EC2" }
  has_spot               = anytrue([for ce in values(var.compute_environments) : ce.type == "SPOT"])
  create_on_demand_queue = var.on_demand_queue && local.has_spot && length(local.on_demand_environments) > 0

  # The seed's instance tags; unset ones are left out rather than written empty.
  instance_tags = merge(
    { Name = local.instance_name },
    { for k, v in var.instance_tags : k => v if v != null },
  )

  # Tags of what the sheep launch (instances, their volumes and network interfaces): the
  # provider's default_tags do not reach them, so the flock's tags are given here.
  launched_tags = merge(var.tags, local.instance_tags)

  work_device = "/dev/xvdcz"

  user_data = templatefile("${path.module}/user_data.tftpl", {
    ulimit_nofile     = var.job.ulimit_nofile
    work_device       = local.work_device
    efs_dns_name      = var.efs_dns_name == null ? "" : var.efs_dns_name
    lustre_dns_name   = var.lustre_dns_name == null ? "" : var.lustre_dns_name
    lustre_mount_name = var.lustre_mount_name == null ? "" : var.lustre_mount_name
  })

  # What Batch's job state time limit may cancel: a job that can never run (no environment
  # large enough) or waits for capacity that does not come.
  runnable_limit_reasons = [
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
  ]

  log_group_name = "/aws/batch/${var.name}"

  # Host paths are the same inside the worker container: the worker starts the payload as a
  # sibling container through the host's Docker daemon, and bind mounts name host paths.
  mounts = merge(
    {
      docker_sock = "/var/run/docker.sock"
      work_root   = "/mnt/root"
    },
    var.uses_efs ? { efs = "/mnt/efs" } : {},
    var.uses_lustre ? { fsx = "/mnt/fsx" } : {},
  )

  resource_requirements = concat(
    [
      { type = "VCPU", value = tostring(var.job.vcpus) },
      { type = "MEMORY", value = tostring(var.job.memory_mib) },
    ],
    var.job.gpus > 0 ? [{ type = "GPU", value = tostring(var.job.gpus) }] : [],
  )
}


resource "aws_launch_template" "sheep" {
  name                   = local.launch_template_name
  description            = "Sheep of shepard flock ${var.name}"
  update_default_version = true
  key_name               = var.ec2_key_pair
  user_data              = base64encode(local.user_data)

  # The user data shuts a sheep down when a file system does not mount: terminate it then, so
  # Batch starts a new one instead of keeping a stopped instance.
  instance_initiated_shutdown_behavior = "terminate"

  # IMDSv2 only, and a hop limit of 1: a container on Docker's bridge network (the worker, the
  # payload) is one hop further away and cannot reach the instance role. Jobs get the job
  # role's credentials from the ECS agent's endpoint instead (ECS_ENABLE_TASK_IAM_ROLE).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.root_volume_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  # The container-storage volume: the user data formats it and mounts it before Docker starts;
  # it holds Docker's data root (images, containers) and the job workspaces (/mnt/root).
  block_device_mappings {
    device_name = local.work_device
    ebs {
      volume_size           = var.container_storage_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  dynamic "tag_specifications" {
    for_each = ["instance", "volume", "network-interface"]
    content {
      resource_type = tag_specifications.value
      tags          = local.launched_tags
    }
  }
}

resource "aws_batch_compute_environment" "this" {
  for_each = var.compute_environments

  # Most changes to compute resources replace the environment, and the queue holds on to the
  # old one: a generated name (the given name is its prefix) lets the new one be created first.
  compute_environment_name_prefix = "${coalesce(each.value.name, "${var.name}-${each.key}")}-"

  type = "MANAGED"
  # Null on AWS: Batch's service-linked role, which in-place updates (update_policy) require.
  service_role = var.service_role_arn

  compute_resources {
    type                = each.value.type
    allocation_strategy = each.value.type == "SPOT" ? "SPOT_PRICE_CAPACITY_OPTIMIZED" : "BEST_FIT_PROGRESSIVE"
    bid_percentage      = each.value.type == "SPOT" ? each.value.bid_percentage : null
    spot_iam_fleet_role = each.value.type == "SPOT" ? var.spot_fleet_role_arn : null
    instance_type       = each.value.instance_types
    min_vcpus           = each.value.min_vcpus
    max_vcpus           = coalesce(each.value.max_vcpus, var.max_vcpus)
    instance_role       = var.instance_profile_arn
    subnets             = var.subnet_ids
    security_group_ids  = [var.security_group_id]
    ec2_key_pair        = var.ec2_key_pair
    # The flock's tags on the instances Batch launches (cost reports split by shepard:flock).
    tags = local.launched_tags

    # Batch picks the current ECS-optimized Amazon Linux 2023 AMI (no AMI lookup needed); GPU
    # environments get the NVIDIA variant.
    ec2_configuration {
      image_type = each.value.gpu ? "ECS_AL2023_NVIDIA" : "ECS_AL2023"
    }

    # A pinned version, so that a changed launch template rolls the environment's instances.
    # pin_launch_template_version = false uses "$Default" (for an API that rewrites the
    # template on every apply, where a pinned version would never settle).
    launch_template {
      launch_template_id = aws_launch_template.sheep.id
      version            = var.pin_launch_template_version ? aws_launch_template.sheep.latest_version : "$Default"
    }
  }

  # Infrastructure updates (new launch template version, instance types, AMI) replace the
  # instances in place; running jobs get this long to finish before they are stopped (null:
  # no update policy, for an API that does not keep one).
  dynamic "update_policy" {
    for_each = var.update_job_timeout_minutes == null ? [] : [var.update_job_timeout_minutes]
    content {
      job_execution_timeout_minutes = update_policy.value
      terminate_jobs_on_update      = false
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_batch_job_queue" "this" {
  name     = local.queue_name
  state    = "ENABLED"
  priority = 1

  # Environments are tried in ascending `order`, e.g. Spot first, on-demand as the fallback.
  dynamic "compute_environment_order" {
    for_each = var.compute_environments
    content {
      order               = compute_environment_order.value.order
      compute_environment = aws_batch_compute_environment.this[compute_environment_order.key].arn
    }
  }

  # A job that can never run (no environment large enough, no instance type that fits) or that
  # waits for capacity longer than this is cancelled instead of blocking the queue for ever.
  dynamic "job_state_time_limit_action" {
    for_each = var.runnable_timeout_seconds == null ? [] : local.runnable_limit_reasons
    content {
      action           = "CANCEL"
      state            = "RUNNABLE"
      reason           = job_state_time_limit_action.value
      max_time_seconds = var.runnable_timeout_seconds
    }
  }

  lifecycle {
    precondition {
      condition     = !var.on_demand_queue || local.create_on_demand_queue
      error_message = "on_demand_queue is set but the compute environments are not both SPOT and EC2: the ladder to on-demand needs a Spot environment to leave and an on-demand one to go to. Add the missing kind or set on_demand_queue = false."
    }
  }
}

# Where a job goes after spot.attempts reclaims: the same settings as the main queue over the
# on-demand environments only (their orders kept, so the queue tries them as the main one does).
resource "aws_batch_job_queue" "on_demand" {
  count = local.create_on_demand_queue ? 1 : 0

  name     = local.on_demand_queue_name
  state    = "ENABLED"
  priority = 1

  dynamic "compute_environment_order" {
    for_each = local.on_demand_environments
    content {
      order               = compute_environment_order.value.order
      compute_environment = aws_batch_compute_environment.this[compute_environment_order.key].arn
    }
  }

  dynamic "job_state_time_limit_action" {
    for_each = var.runnable_timeout_seconds == null ? [] : local.runnable_limit_reasons
    content {
      action           = "CANCEL"
      state            = "RUNNABLE"
      reason           = job_state_time_limit_action.value
      max_time_seconds = var.runnable_timeout_seconds
    }
  }
}

# The jobs' own log group (not Batch's shared /aws/batch/job), kept for a set time and
# encrypted with the flock's key.
resource "aws_cloudwatch_log_group" "jobs" {
  #checkov:skip=CKV_AWS_338:Retention is the flock's batch.log_retention_days (30 by default); the job's outputs and error zips are the record, not its log.
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_batch_job_definition" "this" {
  name                  = local.job_definition_name
  type                  = "container"
  platform_capabilities = ["EC2"]
  # The job's tags (and the job definition's) reach the ECS task.
  propagate_tags = true

  container_properties = jsonencode({
    image                = var.worker_image
    jobRoleArn           = var.job_role_arn
    resourceRequirements = local.resource_requirements
    environment          = [for k in sort(keys(var.job_environment)) : { name = k, value = var.job_environment[k] }]
    # The worker needs the host's Docker socket to start the payload as a sibling container
    # (not privileged: only the payload gets extra rights, and only when the flock allows it).
    volumes     = [for name, path in local.mounts : { name = name, host = { sourcePath = path } }]
    mountPoints = [for name, path in local.mounts : { sourceVolume = name, containerPath = path, readOnly = false }]
    ulimits     = [{ name = "nofile", softLimit = var.job.ulimit_nofile, hardLimit = var.job.ulimit_nofile }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"  = aws_cloudwatch_log_group.jobs.name
        "awslogs-region" = var.region
      }
    }
  })

  timeout {
    attempt_duration_seconds = var.job.timeout_seconds
  }

  lifecycle {
    precondition {
      condition     = var.job.gpus == 0 || anytrue([for ce in values(var.compute_environments) : ce.gpu])
      error_message = "job.gpus is ${var.job.gpus} but no compute environment has gpu = true: jobs would wait forever. Add a GPU compute environment or set job.gpus = 0."
    }
  }

  retry_strategy {
    attempts = var.job.retry_attempts

    # A reclaimed Spot instance (or a failed host) is retried when retry_on_host_reclaim is
    # set; anything else exits at once, because running it again would fail the same way.
    # Without a matching condition Batch would retry every failure up to `attempts`.
    dynamic "evaluate_on_exit" {
      for_each = var.job.retry_on_host_reclaim ? [1] : []
      content {
        action           = "RETRY"
        on_status_reason = "Host EC2*"
      }
    }

    evaluate_on_exit {
      action    = "EXIT"
      on_reason = "*"
    }
  }
}
