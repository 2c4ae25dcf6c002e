locals {
  instance_name        = coalesce(var.instance_name, "${var.name}-sheep")
  launch_template_name = coalesce(var.launch_template_name, "${var.name}-sheep")
  queue_name           = coalesce(var.queue_name, "${var.name}-queue")
  job_definition_name  = coalesce(var.job_definition_name, "${var.name}-job")

  # The seed's instance tags; unset ones are left out rather than written empty.
  instance_tags = merge(
    { Name = local.instance_name },
    { for k, v in var.instance_tags : k => v if v != null },
  )

  work_device = "/dev/xvdcz"

  user_data = templatefile("${path.module}/user_data.tftpl", {
    ulimit_nofile     = var.job.ulimit_nofile
    work_device       = local.work_device
    efs_dns_name      = var.efs_dns_name == null ? "" : var.efs_dns_name
    lustre_dns_name   = var.lustre_dns_name == null ? "" : var.lustre_dns_name
    lustre_mount_name = var.lustre_mount_name == null ? "" : var.lustre_mount_name
  })

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
  #checkov:skip=CKV_AWS_341:Hop limit 2 lets the worker container (Docker bridge network) read its instance id to tag its sheep; IMDSv2 tokens are still required.
  name                   = local.launch_template_name
  description            = "Sheep of shepard flock ${var.name}"
  update_default_version = true
  key_name               = var.ec2_key_pair
  user_data              = base64encode(local.user_data)

  # IMDSv2 only. Hop limit 2 lets containers on the bridge network reach it (the ECS agent
  # hands them their role credentials through its own endpoint, not IMDS).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
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

  # The container-storage volume: the user data formats it and mounts it at /mnt/root, where
  # every job's inputs and outputs live.
  block_device_mappings {
    device_name = local.work_device
    ebs {
      volume_size           = var.container_storage_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = local.instance_tags
  }

  tag_specifications {
    resource_type = "volume"
    tags          = local.instance_tags
  }
}

resource "aws_batch_compute_environment" "this" {
  for_each = var.compute_environments

  # Most changes to compute resources replace the environment, and the queue holds on to the
  # old one: a generated name lets the new one be created first.
  compute_environment_name        = each.value.name
  compute_environment_name_prefix = each.value.name == null ? "${var.name}-${each.key}-" : null

  type         = "MANAGED"
  service_role = var.service_role_arn

  compute_resources {
    type                = each.value.type
    allocation_strategy = each.value.type == "SPOT" ? "SPOT_CAPACITY_OPTIMIZED" : "BEST_FIT_PROGRESSIVE"
    bid_percentage      = each.value.type == "SPOT" ? each.value.bid_percentage : null
    spot_iam_fleet_role = each.value.type == "SPOT" ? var.spot_fleet_role_arn : null
    instance_type       = each.value.instance_types
    min_vcpus           = each.value.min_vcpus
    max_vcpus           = coalesce(each.value.max_vcpus, var.max_vcpus)
    instance_role       = var.instance_profile_arn
    subnets             = var.subnet_ids
    security_group_ids  = [var.security_group_id]
    ec2_key_pair        = var.ec2_key_pair

    # Batch picks the current ECS-optimized AMI (no AMI lookup needed); GPU environments get
    # the NVIDIA variant.
    ec2_configuration {
      image_type = each.value.gpu ? "ECS_AL2_NVIDIA" : "ECS_AL2"
    }

    # A pinned version, so that a changed launch template rolls the environment's instances.
    # moto echoes the provider's default tags back as a "launch-template" tag specification,
    # so every plan against it updates the template; pinning would then make each re-apply fail
    # with "inconsistent final plan". Against the emulator the default version is used instead.
    launch_template {
      launch_template_id = aws_launch_template.sheep.id
      version            = var.emulator ? "$Default" : aws_launch_template.sheep.latest_version
    }
  }

  # service_role_arn comes from an output that depends on the role's policy attachment, so the
  # policy is attached before the environment exists and detached only after it is gone.
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
}

resource "aws_batch_job_definition" "this" {
  name                  = local.job_definition_name
  type                  = "container"
  platform_capabilities = ["EC2"]
  propagate_tags        = true

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

    # A reclaimed Spot instance (or a failed host) is retried; anything the job itself did
    # wrong is not, because running it again would fail the same way.
    dynamic "evaluate_on_exit" {
      for_each = var.job.retry_on_host_reclaim ? [1] : []
      content {
        action           = "RETRY"
        on_status_reason = "Host EC2*"
      }
    }

    dynamic "evaluate_on_exit" {
      for_each = var.job.retry_on_host_reclaim ? [1] : []
      content {
        action    = "EXIT"
        on_reason = "*"
      }
    }
  }
}
