# One shepard Lambda: its KMS-encrypted log group (made first, so Lambda does not create an
# unencrypted group that never expires) and the function. The scheduler and API modules both
# use it; what differs between them (queue, mapping, function URL) stays in those modules.

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is the flock's lambda.log_retention_days (30 by default); a year of Lambda logs is rarely wanted.
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:The function only calls AWS APIs; a VPC would add NAT or endpoints and nothing else.
  #checkov:skip=CKV_AWS_116:The scheduler's failed messages go to its queue's dead-letter queue (a function DLQ does not apply to SQS event sources); the API is invoked synchronously, so its caller gets the error.
  #checkov:skip=CKV_AWS_50:X-Ray tracing is not part of the flock; logs carry each job's id.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile outside the flock; the zip is built deterministically by shepard.package.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is optional (reserved_concurrency); setting it by default fails in accounts with a low concurrency quota.
  function_name                  = var.function_name
  description                    = var.description
  role                           = var.role_arn
  runtime                        = var.runtime
  handler                        = var.handler
  filename                       = var.zip_path
  source_code_hash               = filebase64sha256(var.zip_path)
  memory_size                    = var.memory_mib
  timeout                        = var.timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = var.environment
  }

  depends_on = [aws_cloudwatch_log_group.this]
}
