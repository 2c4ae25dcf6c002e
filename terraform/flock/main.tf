# A flock: the modules of terraform/modules composed into one deployable unit.

# Zones that exist in this account, looked up only when a new VPC needs them and none are given
# (an offline plan passes availability_zones, so it calls no AWS API).
data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:The zone names are what this lookup finds (they differ per account), so no zone-name or zone-id filter can pin them beforehand; only the first two sorted names are used, a zone AWS adds takes a later letter, and flock.yaml network.availability_zones pins the zones and skips the lookup.
  count = var.availability_zones == null && var.network.create_vpc ? 1 : 0

  state = "available"
  filter {
    name   = "zone-type"
    values = ["availability-zone"]
  }
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  environment_name = coalesce(var.network.environment_name, var.name)
  network_mode     = coalesce(var.network.mode, var.network.make_subnets_public == false ? "nat" : "public")
  availability_zones = var.availability_zones != null ? var.availability_zones : (
    var.network.create_vpc ? slice(sort(data.aws_availability_zones.available[0].names), 0, 2) : []
  )

  # The most sheep the compute environments may run at once, counting 2 vCPUs per sheep (the
  # smallest instances Batch's "optimal" picks): the sheep subnets must have room for them.
  max_sheep = ceil(sum([for ce in values(var.batch.compute_environments) : coalesce(ce.max_vcpus, var.batch.max_vcpus)]) / 2)

  # The flock's tags for what the sheep launch (the provider's default_tags do not reach them).
  flock_tags = merge(var.resource_tags, { "shepard:flock" = var.name })

  table_name  = coalesce(var.table.name, "${var.name}-jobs")
  secret_name = coalesce(var.secret_name, "${var.name}-secrets")
  # ECR refuses a name ending in '-' (or with '--'), which the flock name allows.
  repository_name = coalesce(var.ecr.repository_name, trim(replace(var.name, "/-+/", "-"), "-"))

  uses_efs             = var.efs.create
  uses_lustre          = var.lustre.create
  create_lustre_bucket = var.lustre.create && var.lustre.existing_bucket == null
  lustre_bucket        = var.lustre.existing_bucket != null ? var.lustre.existing_bucket : module.storage.lustre_bucket

  payload_image = coalesce(var.images.payload, "${module.registry.repository_url}:payload-latest")
  worker_image  = coalesce(var.images.worker, "${module.registry.repository_url}:worker-latest")

  instance_tags = {
    Project      = var.instance_tags.project
    Team         = var.instance_tags.team
    Contact      = var.instance_tags.contact
    WorkloadType = var.instance_tags.workload_type
  }

  uses_spot = anytrue([for ce in values(var.batch.compute_environments) : ce.type == "SPOT"])

  # docs/contracts.md section 4: what every job's worker finds in its environment.
  job_environment = merge(
    {
      INPUTS_BUCKET                      = module.storage.inputs_bucket
      OUTPUTS_BUCKET                     = module.storage.outputs_bucket
      ERROR_BUCKET                       = module.storage.errors_bucket
      USES_EFS                           = local.uses_efs ? "True" : "False"
      USES_LUSTRE                        = local.uses_lustre ? "True" : "False"
      ULIMIT_FILENO                      = tostring(var.job.ulimit_nofile)
      SHEPARD_FLOCK                      = var.name
      SHEPARD_TABLE_NAME                 = module.job_table.table_name
      SHEPARD_SECRET_NAME                = module.secrets.secret_name
      SHEPARD_QUICK_DEPLOY_BUCKET        = module.storage.quick_deploy_bucket
      SHEPARD_PAYLOAD_IMAGE              = local.payload_image
      SHEPARD_ALLOW_DOCKER_DAEMON        = var.allow_docker_daemon ? "True" : "False"
      SHEPARD_WORK_ROOT                  = "/mnt/root"
      SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS = tostring(var.table.days_to_keep_finished_jobs)
      SHEPARD_RETRY_ATTEMPTS             = tostring(var.job.retry_attempts)
      SHEPARD_RETRY_ON_HOST_RECLAIM      = var.job.retry_on_host_reclaim ? "True" : "False"
    },
    local.uses_efs ? { SHEPARD_EFS_ROOT = "/mnt/efs" } : {},
    local.uses_lustre ? { SHEPARD_LUSTRE_ROOT = "/mnt/fsx" } : {},
    var.job.checkpoint_interval_minutes > 0 ? { SHEPARD_CHECKPOINT_INTERVAL_MINUTES = tostring(var.job.checkpoint_interval_minutes) } : {},
  )

  # docs/contracts.md section 3: the environment of both Lambdas.
  lambda_environment = {
    SHEPARD_FLOCK                              = var.name
    SHEPARD_TABLE_NAME                         = module.job_table.table_name
    SHEPARD_JOB_QUEUE                          = module.batch.job_queue_arn
    SHEPARD_JOB_DEFINITION                     = module.batch.job_definition_arn
    SHEPARD_INPUTS_BUCKET                      = module.storage.inputs_bucket
    SHEPARD_OUTPUTS_BUCKET                     = module.storage.outputs_bucket
    SHEPARD_ERRORS_BUCKET                      = module.storage.errors_bucket
    SHEPARD_QUICK_DEPLOY_BUCKET                = module.storage.quick_deploy_bucket
    SHEPARD_DAYS_TO_KEEP_FAILED_LAUNCH_INDEXES = tostring(var.table.days_to_keep_failed_launch_indexes)
    SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS         = tostring(var.table.days_to_keep_finished_jobs)
    SHEPARD_JOB_TIMEOUT_SECONDS                = tostring(var.job.timeout_seconds)
    # shepard.joblayer.retry: the ladder to on-demand and out-of-memory retries.
    SHEPARD_ON_DEMAND_JOB_QUEUE = module.batch.on_demand_job_queue_arn == null ? "" : module.batch.on_demand_job_queue_arn
    SHEPARD_SPOT_ATTEMPTS       = tostring(var.retries.spot_attempts)
    SHEPARD_OOM_FACTOR          = tostring(var.retries.oom_factor)
    SHEPARD_OOM_MAX_MEMORY_MIB  = tostring(var.retries.oom_max_memory_mib)
    SHEPARD_JOB_MEMORY_MIB      = tostring(var.job.memory_mib)
    # The fit check at submit (shepard/joblayer/fit.py): what every job asks, what each compute
    # environment may launch.
    SHEPARD_JOB_RESOURCES = jsonencode({
      vcpus                = var.job.vcpus
      memory_mib           = var.job.memory_mib
      gpus                 = var.job.gpus
      compute_environments = { for k, ce in var.batch.compute_environments : k => ce.instance_types }
    })
  }
}

module "kms" {
  source = "../modules/kms"
  name   = var.name
  region = var.region
  # flock.yaml encryption.kms_key: flock. Otherwise no key: every module uses its service's
  # AWS managed or AWS owned key (kms_key_arn null).
  create = var.flock_kms_key
  # The Lambdas' log groups and the Batch jobs' log group /aws/batch/<name>...
  log_group_prefixes = ["/aws/lambda/${var.name}-", "/aws/batch/${var.name}"]
  # S3 writes the inputs bucket's notifications to the encrypted scheduler queue.
  s3_notification_bucket_arns = [module.storage.bucket_arns["inputs"]]
  # EventBridge sends Batch's job events to the encrypted events queue (module.events' rule).
  eventbridge_rule_names = var.batch_events_delivery ? ["${var.name}-batch-job-state"] : []
}

module "network" {
  source = "../modules/network"

  name                 = var.name
  environment_name     = local.environment_name
  create_vpc           = var.network.create_vpc
  availability_zones   = local.availability_zones
  vpc_cidr             = var.network.vpc_cidr
  public_subnet_cidrs  = var.network.public_subnet_cidrs
  private_subnet_cidrs = var.network.private_subnet_cidrs
  mode                 = local.network_mode
  allow_ssh            = var.network.allow_ssh
  ssh_cidr             = var.network.ssh_cidr
  existing_vpc_id      = var.network.existing_vpc_id
  existing_vpc_cidr    = var.network.existing_vpc_cidr
  existing_subnet_ids  = var.network.existing_subnet_ids
  create_efs_rules     = local.uses_efs
  create_lustre_rules  = local.uses_lustre
  create_nat           = var.create_nat_gateway
  max_sheep            = local.max_sheep
}

module "storage" {
  source = "../modules/storage"

  name                 = var.name
  bucket_names         = var.buckets
  kms_key_arn          = module.kms.key_arn
  use_kms_key          = var.flock_kms_key
  force_destroy        = var.force_destroy_buckets
  create_lustre_bucket = local.create_lustre_bucket
  lustre_bucket_name   = var.lustre.bucket_name
  enforce_tls          = var.enforce_tls
  lifecycle_rules      = var.s3_lifecycle_rules
}

module "job_table" {
  source = "../modules/job_table"

  table_name  = local.table_name
  kms_key_arn = module.kms.key_arn
  use_kms_key = var.flock_kms_key
}

module "secrets" {
  source = "../modules/secrets"

  name        = var.name
  secret_name = local.secret_name
  kms_key_arn = module.kms.key_arn
  use_kms_key = var.flock_kms_key
  # A disposable flock (force_destroy_buckets) frees the secret's name at once, so the same
  # flock can be deployed again right after a destroy.
  recovery_window_in_days = var.force_destroy_buckets ? 0 : 7
}

module "registry" {
  source = "../modules/registry"

  repository_name = local.repository_name
  kms_key_arn     = module.kms.key_arn
  use_kms_key     = var.flock_kms_key
  keep_images     = var.ecr.keep_images
  force_delete    = var.force_destroy_buckets
  # Never expire what a job definition uses: the moving tags and the pinned tags deploy passes.
  protected_tags = distinct(concat(["payload-latest", "worker-latest"], [
    for image in compact([var.images.payload, var.images.worker]) :
    regex("[^:/@]+$", image) if !strcontains(image, "@") && length(regexall(":[^:/@]+$", image)) > 0
  ]))
}

module "efs" {
  source = "../modules/efs"

  create             = local.uses_efs
  file_system_policy = var.efs_file_system_policy
  file_system_name   = coalesce(var.efs.name, "${var.name}-efs")
  kms_key_arn        = module.kms.key_arn
  throughput_mode    = var.efs.throughput_mode
  provisioned_mibps  = var.efs.provisioned_mibps
  subnets            = module.network.subnet_ids_by_zone
  security_group_id  = module.network.security_group_id
}

module "lustre" {
  source = "../modules/lustre"

  create               = local.uses_lustre
  file_system_name     = coalesce(var.lustre.name, "${var.name}-lustre")
  storage_capacity_gib = var.lustre.storage_capacity_gib
  deployment_type      = var.lustre.deployment_type
  bucket_name          = local.lustre_bucket
  kms_key_arn          = module.kms.key_arn
  subnet_id            = module.network.subnet_ids[0]
  security_group_id    = module.network.security_group_id
}

module "iam" {
  source = "../modules/iam"

  name                      = var.name
  region                    = var.region
  account_id                = split(":", module.job_table.table_arn)[4] # no STS lookup, with or without a flock key
  kms_key_arn               = module.kms.key_arn
  use_kms_key               = var.flock_kms_key
  bucket_arns               = module.storage.bucket_arns
  table_arn                 = module.job_table.table_arn
  secret_arn                = module.secrets.secret_arn
  secret_name               = module.secrets.secret_name
  repository_arn            = module.registry.repository_arn
  sqs_queue_arn             = module.scheduler.queue_arn
  job_queue_arn             = module.batch.job_queue_arn
  job_definition_arn_prefix = module.batch.job_definition_arn_prefix
  on_demand_queue           = var.retries.on_demand_queue
  on_demand_job_queue_arn   = module.batch.on_demand_job_queue_arn
  scheduler_log_group_arn   = module.scheduler.log_group_arn
  api_log_group_arn         = module.api.log_group_arn
  events_queue_arn          = module.events.queue_arn
  events_log_group_arn      = module.events.log_group_arn
  notifications_topic_arn   = module.events.topic_arn
  extra_iam_policy_json     = var.extra_iam_policy_json
  create_spot_fleet_role    = local.uses_spot
  create_batch_service_role = var.create_batch_service_role
}

module "batch" {
  source = "../modules/batch"

  name                        = var.name
  region                      = var.region
  instance_name               = var.batch.instance_name
  launch_template_name        = var.batch.launch_template_name
  queue_name                  = var.batch.queue_name
  job_definition_name         = var.batch.job_definition_name
  ec2_key_pair                = var.batch.ec2_key_pair
  max_vcpus                   = var.batch.max_vcpus
  compute_environments        = var.batch.compute_environments
  subnet_ids                  = module.network.subnet_ids
  security_group_id           = module.network.security_group_id
  instance_profile_arn        = module.iam.instance_profile_arn
  service_role_arn            = module.iam.batch_service_role_arn
  spot_fleet_role_arn         = module.iam.spot_fleet_role_arn
  job_role_arn                = module.iam.job_role_arn
  worker_image                = local.worker_image
  job                         = var.job
  job_environment             = local.job_environment
  uses_efs                    = local.uses_efs
  uses_lustre                 = local.uses_lustre
  efs_dns_name                = module.efs.dns_name
  lustre_dns_name             = module.lustre.dns_name
  lustre_mount_name           = module.lustre.mount_name
  root_volume_gib             = var.ebs.root_size_gib
  container_storage_gib       = var.ebs.container_storage_size_gib
  instance_tags               = local.instance_tags
  tags                        = local.flock_tags
  kms_key_arn                 = module.kms.key_arn
  log_retention_days          = var.batch.log_retention_days
  runnable_timeout_seconds    = var.cancel_stuck_jobs ? var.batch.runnable_timeout_seconds : null
  update_job_timeout_minutes  = var.compute_environment_update_policy ? var.batch.update_job_timeout_minutes : null
  pin_launch_template_version = var.pin_launch_template_version
  on_demand_queue             = var.retries.on_demand_queue
}

module "scheduler" {
  source = "../modules/scheduler"

  name                        = var.name
  queue_name                  = var.sqs.name
  max_receive_count           = var.sqs.max_receive_count
  visibility_timeout_seconds  = var.sqs.visibility_timeout_seconds
  batch_size                  = var.sqs.batch_size
  batching_window_seconds     = var.sqs.batching_window_seconds
  kms_key_arn                 = module.kms.key_arn
  use_kms_key                 = var.flock_kms_key
  inputs_bucket_name          = module.storage.inputs_bucket
  inputs_bucket_arn           = module.storage.bucket_arns["inputs"]
  role_arn                    = module.iam.scheduler_role_arn
  zip_path                    = coalesce(var.lambda.scheduler_zip, "${path.module}/lambda/scheduler.zip")
  lambda_memory_mib           = var.lambda.memory_mib
  lambda_timeout_seconds      = var.lambda.timeout_seconds
  log_retention_days          = var.lambda.log_retention_days
  environment                 = local.lambda_environment
  enable_event_source_mapping = var.enable_event_source_mapping
}

module "api" {
  source = "../modules/api"

  name                   = var.name
  role_arn               = module.iam.api_role_arn
  zip_path               = coalesce(var.lambda.api_zip, "${path.module}/lambda/api.zip")
  kms_key_arn            = module.kms.key_arn
  lambda_memory_mib      = var.lambda.memory_mib
  lambda_timeout_seconds = var.lambda.timeout_seconds
  log_retention_days     = var.lambda.log_retention_days
  environment            = local.lambda_environment
}

module "events" {
  source = "../modules/events"

  name = var.name
  # Every queue of the flock: a job the retry ladder moves to the on-demand queue keeps
  # reporting its states.
  job_queue_arns               = compact([module.batch.job_queue_arn, module.batch.on_demand_job_queue_arn])
  kms_key_arn                  = module.kms.key_arn
  use_kms_key                  = var.flock_kms_key
  role_arn                     = module.iam.events_role_arn
  zip_path                     = coalesce(var.lambda.events_zip, "${path.module}/lambda/events.zip")
  max_receive_count            = var.sqs.max_receive_count
  lambda_memory_mib            = var.lambda.memory_mib
  lambda_timeout_seconds       = var.lambda.timeout_seconds
  log_retention_days           = var.lambda.log_retention_days
  environment                  = local.lambda_environment
  create_delivery              = var.batch_events_delivery
  enable_event_source_mapping  = var.enable_event_source_mapping
  notification_emails          = var.notifications.emails
  notification_https_endpoints = var.notifications.https_endpoints
}
