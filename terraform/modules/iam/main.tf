data "aws_partition" "current" {}

locals {
  # Known at plan time even when the flock's key is created in the same apply.
  flock_key = var.use_kms_key != null ? var.use_kms_key : var.kms_key_arn != null
  partition = data.aws_partition.current.partition
  managed   = "arn:${local.partition}:iam::aws:policy/service-role"

  kms_use = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
  lambda_table_actions = [
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
  ]
  # The flock's secret and the ones secretify adds beside it (<secret_name>-part-N): every
  # secret whose name starts with "<secret_name>-" (the main one's ARN ends in -<6 chars>).
  secret_arn_pattern = "arn:${local.partition}:secretsmanager:${var.region}:${var.account_id}:secret:${var.secret_name}-*"
  # SubmitJob is authorised on the queue and on every revision of the flock's job definition.
  submit_job_resources = [var.job_queue_arn, "${var.job_definition_arn_prefix}:*"]
}

# ---------------------------------------------------------------------------------------------
# Trust policies
# ---------------------------------------------------------------------------------------------

# aws:SourceAccount where the service documents it for its role's trust policy (confused
# deputy prevention): Lambda, ECS tasks (the Batch jobs) and Batch. EC2 does not support it
# for an instance role, and the Spot fleet role's documented trust has no condition, so those
# two stay without one.
locals {
  trusted_services = {
    lambda = { service = "lambda.amazonaws.com", source_account = true }
    job    = { service = "ecs-tasks.amazonaws.com", source_account = true }
    batch  = { service = "batch.amazonaws.com", source_account = true }
    sheep  = { service = "ec2.amazonaws.com", source_account = false }
    spot   = { service = "spotfleet.amazonaws.com", source_account = false }
  }
}

data "aws_iam_policy_document" "trust" {
  for_each = local.trusted_services

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [each.value.service]
    }
    dynamic "condition" {
      for_each = each.value.source_account ? [var.account_id] : []
      content {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [condition.value]
      }
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Scheduler Lambda: turns zip drops on the queue into job records and Batch jobs
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  description        = "Scheduler Lambda of shepard flock ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.trust["lambda"].json
}

# What both Lambdas do through the shared job layer: write job records, submit Batch jobs.
data "aws_iam_policy_document" "submit_jobs" {
  statement {
    sid = "JobRecords"
    # JobStore: PutItem (a job), BatchWriteItem (an array job's children), GetItem (duplicate
    # check), UpdateItem (Batch job id, phase), DeleteItem (a record whose SubmitJob failed).
    actions   = local.lambda_table_actions
    resources = [var.table_arn]
  }
  statement {
    sid       = "SubmitJobs"
    actions   = ["batch:SubmitJob"]
    resources = local.submit_job_resources
  }
  dynamic "statement" {
    # Only with the flock's key: AWS managed keys are granted by their own key policies.
    for_each = local.flock_key ? [var.kms_key_arn] : []
    content {
      sid       = "FlockKey"
      actions   = local.kms_use
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "scheduler" {
  source_policy_documents = [data.aws_iam_policy_document.submit_jobs.json]
  statement {
    sid       = "ConsumeOwnQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
    resources = [var.sqs_queue_arn]
  }
  statement {
    sid       = "ReadInputZips"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${var.bucket_arns.inputs}/*"]
  }
  statement {
    sid       = "WriteRejectionReports"
    actions   = ["s3:PutObject"]
    resources = ["${var.bucket_arns.errors}/*"]
  }
  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [var.scheduler_log_group_arn, "${var.scheduler_log_group_arn}:*"]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "scheduler"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

# ---------------------------------------------------------------------------------------------
# API Lambda: batches jobs sent as JSON
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "api" {
  name               = "${var.name}-api"
  description        = "Job-batching API Lambda of shepard flock ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.trust["lambda"].json
}

data "aws_iam_policy_document" "api" {
  source_policy_documents = [data.aws_iam_policy_document.submit_jobs.json]
  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [var.api_log_group_arn, "${var.api_log_group_arn}:*"]
  }
}

resource "aws_iam_role_policy" "api" {
  name   = "api"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.api.json
}

# ---------------------------------------------------------------------------------------------
# Job role: what the worker (and through it the payload) may do inside a Batch job
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "job" {
  name               = "${var.name}-job"
  description        = "Batch jobs of shepard flock ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.trust["job"].json
}

data "aws_iam_policy_document" "job" {
  #checkov:skip=CKV_AWS_356:ecr:GetAuthorizationToken has no resource-level permissions; it must be granted on "*".
  statement {
    sid       = "ReadInputsAndQuickDeploy"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${var.bucket_arns.inputs}/*", "${var.bucket_arns["quick-deploy"]}/*"]
  }
  statement {
    sid       = "ListQuickDeployFolders"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arns["quick-deploy"]]
  }
  statement {
    sid = "WriteOutputsAndErrors"
    # Result and error zips stream into multipart uploads; a failed one is aborted.
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${var.bucket_arns.outputs}/*", "${var.bucket_arns.errors}/*"]
  }
  statement {
    # CHECKPOINT_DIR: the worker restores a job's checkpoint, and removes it once the job ends.
    sid       = "ReadAndRemoveCheckpoints"
    actions   = ["s3:GetObject", "s3:DeleteObject"]
    resources = ["${var.bucket_arns.outputs}/checkpoints/*"]
  }
  statement {
    sid       = "ListCheckpoints"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arns.outputs]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["checkpoints/*"]
    }
  }
  statement {
    sid       = "ClaimAndUpdateJobRecords"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [var.table_arn]
  }
  statement {
    sid     = "ReadFlockSecret"
    actions = ["secretsmanager:GetSecretValue"]
    # The secret, and the parts secretify makes when the files exceed one secret's 64 KiB.
    resources = [var.secret_arn, local.secret_arn_pattern]
  }
  statement {
    sid       = "RegistryLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid = "PullFlockImages"
    # DescribeImages lets the worker see that a moving tag (payload-latest) has a new digest.
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability", "ecr:DescribeImages"]
    resources = [var.repository_arn]
  }
  dynamic "statement" {
    # Only with the flock's key: AWS managed keys are granted by their own key policies.
    for_each = local.flock_key ? [var.kms_key_arn] : []
    content {
      sid       = "FlockKey"
      actions   = local.kms_use
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "job" {
  name   = "job"
  role   = aws_iam_role.job.id
  policy = data.aws_iam_policy_document.job.json
}

resource "aws_iam_role_policy" "extra" {
  count = var.extra_iam_policy_json == null ? 0 : 1

  name   = "extra"
  role   = aws_iam_role.job.id
  policy = var.extra_iam_policy_json
}

# ---------------------------------------------------------------------------------------------
# Sheep (EC2 instances), the Batch service and the Spot fleet: AWS-managed policies
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "sheep" {
  name               = "${var.name}-sheep"
  description        = "EC2 instances (sheep) of shepard flock ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.trust["sheep"].json
}

resource "aws_iam_role_policy_attachment" "sheep" {
  role       = aws_iam_role.sheep.name
  policy_arn = "${local.managed}/AmazonEC2ContainerServiceforEC2Role"
}

resource "aws_iam_instance_profile" "sheep" {
  name = "${var.name}-sheep"
  role = aws_iam_role.sheep.name
}

# Compute environments use Batch's service-linked role (AWSServiceRoleForBatch): AWS needs it
# for in-place updates of a compute environment. A custom service role is made only where
# something requires one: the moto emulator refuses a compute environment without it.
resource "aws_iam_role" "batch_service" {
  count = var.create_batch_service_role ? 1 : 0

  name               = "${var.name}-batch-service"
  description        = "AWS Batch service role of shepard flock ${var.name} (emulator only; AWS uses the service-linked role)"
  assume_role_policy = data.aws_iam_policy_document.trust["batch"].json
}

resource "aws_iam_role_policy_attachment" "batch_service" {
  count = var.create_batch_service_role ? 1 : 0

  role       = aws_iam_role.batch_service[0].name
  policy_arn = "${local.managed}/AWSBatchServiceRole"
}

resource "aws_iam_role" "spot_fleet" {
  count = var.create_spot_fleet_role ? 1 : 0

  name               = "${var.name}-spot-fleet"
  description        = "Spot fleet role of shepard flock ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.trust["spot"].json
}

resource "aws_iam_role_policy_attachment" "spot_fleet" {
  count = var.create_spot_fleet_role ? 1 : 0

  role       = aws_iam_role.spot_fleet[0].name
  policy_arn = "${local.managed}/AmazonEC2SpotFleetTaggingRole"
}

# The Batch service role became optional: where it is still made it keeps its address.
moved {
  from = aws_iam_role.batch_service
  to   = aws_iam_role.batch_service[0]
}

moved {
  from = aws_iam_role_policy_attachment.batch_service
  to   = aws_iam_role_policy_attachment.batch_service[0]
}

# ---------------------------------------------------------------------------------------------
# Events Lambda: records Batch's job state changes, retries (the ladder), notifies
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "events" {
  name               = "${var.name}-events"
  description        = "Batch events Lambda of shepard flock ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.trust["lambda"].json
}

data "aws_iam_policy_document" "events" {
  statement {
    sid = "JobRecords"
    # JobStore.apply_batch_event (UpdateItem), get (GetItem), and a batch's records for its
    # completion message (Query on the batch index).
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"]
    resources = [var.table_arn, "${var.table_arn}/index/*"]
  }
  statement {
    # The retry ladder (shepard.joblayer.retry) submits a failed job again.
    sid       = "ResubmitJobs"
    actions   = ["batch:SubmitJob"]
    resources = local.submit_job_resources
  }
  dynamic "statement" {
    for_each = var.events_queue_arn == null ? [] : [var.events_queue_arn]
    content {
      sid       = "ConsumeOwnQueue"
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
      resources = [statement.value]
    }
  }
  dynamic "statement" {
    for_each = var.events_log_group_arn == null ? [] : [var.events_log_group_arn]
    content {
      sid       = "OwnLogGroup"
      actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      resources = [statement.value, "${statement.value}:*"]
    }
  }
  dynamic "statement" {
    # The queue's and the topic's messages are encrypted with the flock's key, when it has one.
    for_each = local.flock_key ? [var.kms_key_arn] : []
    content {
      sid       = "FlockKey"
      actions   = local.kms_use
      resources = [statement.value]
    }
  }
  dynamic "statement" {
    for_each = var.notifications_topic_arn == null ? [] : [var.notifications_topic_arn]
    content {
      sid       = "PublishNotifications"
      actions   = ["sns:Publish"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "events" {
  name   = "events"
  role   = aws_iam_role.events.id
  policy = data.aws_iam_policy_document.events.json
}

# The ladder (shepard.joblayer.retry): the events Lambda submits a job Spot kept reclaiming to
# the on-demand queue. Only that queue and the flock's job definition: the main queue is in the
# events policy's ResubmitJobs already.
data "aws_iam_policy_document" "events_on_demand" {
  count = var.on_demand_queue ? 1 : 0

  statement {
    sid       = "ResubmitToOnDemand"
    actions   = ["batch:SubmitJob"]
    resources = [var.on_demand_job_queue_arn, "${var.job_definition_arn_prefix}:*"]
  }
}

resource "aws_iam_role_policy" "events_on_demand" {
  count = var.on_demand_queue ? 1 : 0

  name   = "events-on-demand"
  role   = aws_iam_role.events.id
  policy = data.aws_iam_policy_document.events_on_demand[0].json
}
