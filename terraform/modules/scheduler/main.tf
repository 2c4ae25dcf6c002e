locals {
  # Known at plan time even when the flock's key is created in the same apply.
  flock_key     = var.use_kms_key != null ? var.use_kms_key : var.kms_key_arn != null
  function_name = "${var.name}-scheduler"
  queue_name    = coalesce(var.queue_name, "${var.name}-scheduler")

  # AWS's advice for SQS-triggered Lambdas: the visibility timeout is at least six times the
  # function timeout, so a message is not redelivered while a retried batch still runs.
  visibility_timeout = max(var.visibility_timeout_seconds, 6 * var.lambda_timeout_seconds)

  # The queue's ARN carries the account id: no STS lookup needed.
  account_id = split(":", aws_sqs_queue.this.arn)[4]
}

resource "aws_sqs_queue" "dead_letter" {
  name                              = "${local.queue_name}-dlq"
  message_retention_seconds         = 1209600 # 14 days to look at what could not be scheduled
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.flock_key ? 300 : null
  # SSE-SQS without the flock's key; unset with it (the provider refuses both arguments set,
  # even false, once the key's ARN is known: at apply, not at plan).
  sqs_managed_sse_enabled = local.flock_key ? null : true
}

resource "aws_sqs_queue" "this" {
  name                              = local.queue_name
  visibility_timeout_seconds        = local.visibility_timeout
  message_retention_seconds         = 345600
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.flock_key ? 300 : null
  # SSE-SQS without the flock's key; unset with it (the provider refuses both arguments set,
  # even false, once the key's ARN is known: at apply, not at plan).
  sqs_managed_sse_enabled = local.flock_key ? null : true

  # A zip whose event keeps failing ends in the dead-letter queue instead of looping forever.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = var.max_receive_count
  })
}

data "aws_iam_policy_document" "queue" {
  statement {
    sid       = "OnlyTheInputsBucketSends"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [var.inputs_bucket_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "this" {
  queue_url = aws_sqs_queue.this.id
  policy    = data.aws_iam_policy_document.queue.json
}

# Every zip dropped in the inputs bucket becomes a message. S3 checks the queue policy when the
# notification is written, so the policy comes first.
resource "aws_s3_bucket_notification" "inputs" {
  bucket = var.inputs_bucket_name

  queue {
    id            = "shepard-zip-drops"
    queue_arn     = aws_sqs_queue.this.arn
    events        = ["s3:ObjectCreated:*"]
    filter_suffix = ".zip"
  }

  depends_on = [aws_sqs_queue_policy.this]
}

module "function" {
  source = "../lambda_function"

  function_name        = local.function_name
  description          = "Turns zip drops into jobs for shepard flock ${var.name}"
  role_arn             = var.role_arn
  zip_path             = var.zip_path
  kms_key_arn          = var.kms_key_arn
  memory_mib           = var.lambda_memory_mib
  timeout_seconds      = var.lambda_timeout_seconds
  log_retention_days   = var.log_retention_days
  reserved_concurrency = var.reserved_concurrency
  environment          = var.environment
}

resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn = aws_sqs_queue.this.arn
  function_name    = module.function.function_arn
  batch_size       = var.batch_size
  # Lambda hands more than 10 messages at once only with a batching window.
  maximum_batching_window_in_seconds = var.batch_size > 10 ? max(var.batching_window_seconds, 1) : var.batching_window_seconds
  # One bad zip must not make the whole batch visible again.
  function_response_types = ["ReportBatchItemFailures"]
  # Off where something else polls the queue (the local flock: moto would try to run the
  # function in Docker).
  enabled = var.enable_event_source_mapping
}

# The function and its log group moved into the shared lambda_function module: a deployed
# flock keeps them instead of replacing them.
moved {
  from = aws_cloudwatch_log_group.this
  to   = module.function.aws_cloudwatch_log_group.this
}

moved {
  from = aws_lambda_function.this
  to   = module.function.aws_lambda_function.this
}
