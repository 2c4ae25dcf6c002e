locals {
  # Known at plan time even when the flock's key is created in the same apply.
  flock_key = var.use_kms_key != null ? var.use_kms_key : var.kms_key_arn != null
}

# Batch's own view of the flock's jobs: the "Batch Job State Change" events of the flock's job
# queues -> an EventBridge rule -> an SQS queue (with a dead-letter queue) -> the events Lambda,
# which updates the job records (lambdas/events/handler.py). An optional SNS topic gets a
# message when a job fails and when a batch completes.

locals {
  function_name = "${var.name}-events"
  queue_name    = "${var.name}-batch-events"

  # AWS's advice for SQS-triggered Lambdas: a visibility timeout of six times the function's.
  visibility_timeout = 6 * var.lambda_timeout_seconds

  # Only this flock's queues: another flock's jobs (or any other Batch job in the account)
  # never reach this flock's handler.
  event_pattern = {
    source        = ["aws.batch"]
    "detail-type" = ["Batch Job State Change"]
    detail = {
      jobQueue = var.job_queue_arns
    }
  }

  create_topic = length(var.notification_emails) + length(var.notification_https_endpoints) > 0
  subscriptions = merge(
    { for address in var.notification_emails : "email:${address}" => { protocol = "email", endpoint = address } },
    { for url in var.notification_https_endpoints : "https:${url}" => { protocol = "https", endpoint = url } },
  )
}

resource "aws_cloudwatch_event_rule" "batch_jobs" {
  count = var.create_delivery ? 1 : 0

  name           = "${var.name}-batch-job-state"
  description    = "Batch Job State Change events of shepard flock ${var.name}'s job queues"
  event_pattern  = jsonencode(local.event_pattern)
  event_bus_name = "default"
}

resource "aws_sqs_queue" "dead_letter" {
  count = var.create_delivery ? 1 : 0

  name                              = "${local.queue_name}-dlq"
  message_retention_seconds         = 1209600 # 14 days to look at events that could not be applied
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.flock_key ? 300 : null
  # SSE-SQS without the flock's key; unset with it (the provider refuses both arguments set).
  sqs_managed_sse_enabled = local.flock_key ? null : true
}

resource "aws_sqs_queue" "this" {
  count = var.create_delivery ? 1 : 0

  name                              = local.queue_name
  visibility_timeout_seconds        = local.visibility_timeout
  message_retention_seconds         = 345600
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.flock_key ? 300 : null
  # SSE-SQS without the flock's key; unset with it (the provider refuses both arguments set).
  sqs_managed_sse_enabled = local.flock_key ? null : true

  # An event that keeps failing ends in the dead-letter queue instead of looping forever.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter[0].arn
    maxReceiveCount     = var.max_receive_count
  })
}

# EventBridge may send to the queue only for this rule (the confused-deputy guard AWS's
# EventBridge user guide gives for SQS targets).
data "aws_iam_policy_document" "queue" {
  count = var.create_delivery ? 1 : 0

  statement {
    sid       = "OnlyTheBatchEventsRuleSends"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this[0].arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.batch_jobs[0].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "this" {
  count = var.create_delivery ? 1 : 0

  queue_url = aws_sqs_queue.this[0].id
  policy    = data.aws_iam_policy_document.queue[0].json
}

resource "aws_cloudwatch_event_target" "queue" {
  count = var.create_delivery ? 1 : 0

  rule      = aws_cloudwatch_event_rule.batch_jobs[0].name
  target_id = "shepard-events-queue"
  arn       = aws_sqs_queue.this[0].arn

  depends_on = [aws_sqs_queue_policy.this]
}

module "function" {
  source = "../lambda_function"

  function_name      = local.function_name
  description        = "Records AWS Batch's job state changes for shepard flock ${var.name}"
  role_arn           = var.role_arn
  zip_path           = var.zip_path
  kms_key_arn        = var.kms_key_arn
  memory_mib         = var.lambda_memory_mib
  timeout_seconds    = var.lambda_timeout_seconds
  log_retention_days = var.log_retention_days
  environment = merge(
    var.environment,
    local.create_topic ? { SHEPARD_NOTIFY_TOPIC_ARN = aws_sns_topic.notifications[0].arn } : {},
  )
}

resource "aws_lambda_event_source_mapping" "this" {
  count = var.create_delivery ? 1 : 0

  event_source_arn = aws_sqs_queue.this[0].arn
  function_name    = module.function.function_arn
  batch_size       = 10
  # One event that fails must not make the whole batch visible again.
  function_response_types = ["ReportBatchItemFailures"]
  # Off where something else polls the queue (moto would try to run the function in Docker).
  enabled = var.enable_event_source_mapping
}

# Encrypted with the flock's key, or SNS's AWS managed key without one (only services of this
# account, the events Lambda here, publish to the topic).
resource "aws_sns_topic" "notifications" {
  count = local.create_topic ? 1 : 0

  name              = "${var.name}-notifications"
  display_name      = "shepard ${var.name}"
  kms_master_key_id = local.flock_key ? var.kms_key_arn : "alias/aws/sns"
}

resource "aws_sns_topic_subscription" "this" {
  for_each = local.create_topic ? local.subscriptions : {}

  topic_arn = aws_sns_topic.notifications[0].arn
  protocol  = each.value.protocol
  endpoint  = each.value.endpoint
}
