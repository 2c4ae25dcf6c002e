locals {
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
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue" "this" {
  name                              = local.queue_name
  visibility_timeout_seconds        = local.visibility_timeout
  message_retention_seconds         = 345600
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300

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

# Created before the function so that Lambda does not make an unencrypted group that never
# expires.
resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is the flock's lambda.log_retention_days (30 by default); a year of scheduler logs is rarely wanted.
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:The function only calls AWS APIs; a VPC would add NAT or endpoints and nothing else.
  #checkov:skip=CKV_AWS_116:Failed messages go to the queue's dead-letter queue (redrive_policy); a function DLQ does not apply to SQS event sources.
  #checkov:skip=CKV_AWS_50:X-Ray tracing is not part of the flock; logs carry each job's id.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile outside the flock; the zip is built deterministically by shepard.package.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is optional (reserved_concurrency); setting it by default fails in accounts with a low concurrency quota.
  function_name                  = local.function_name
  description                    = "Turns zip drops into jobs for shepard flock ${var.name}"
  role                           = var.role_arn
  runtime                        = "python3.12"
  handler                        = "handler.handler"
  filename                       = var.zip_path
  source_code_hash               = filebase64sha256(var.zip_path)
  memory_size                    = var.lambda_memory_mib
  timeout                        = var.lambda_timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = var.environment
  }

  depends_on = [aws_cloudwatch_log_group.this]
}

resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn = aws_sqs_queue.this.arn
  function_name    = aws_lambda_function.this.arn
  batch_size       = var.batch_size
  # One bad zip must not make the whole batch visible again.
  function_response_types = ["ReportBatchItemFailures"]
  # Against the emulator the local flock polls the queue itself: moto would try to run the
  # function in Docker.
  enabled = !var.emulator
}
