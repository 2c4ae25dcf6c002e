locals {
  function_name = "${var.name}-api"
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is the flock's lambda.log_retention_days (30 by default).
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:The function only calls AWS APIs; a VPC would add NAT or endpoints and nothing else.
  #checkov:skip=CKV_AWS_116:Invoked synchronously (CLI or function URL): the caller gets the error; there is no event to dead-letter.
  #checkov:skip=CKV_AWS_50:X-Ray tracing is not part of the flock; logs carry each job's id.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile outside the flock; the zip is built deterministically by shepard.package.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is optional (reserved_concurrency); setting it by default fails in accounts with a low concurrency quota.
  function_name                  = local.function_name
  description                    = "Batches jobs sent as JSON to shepard flock ${var.name}"
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

# HTTPS endpoint for `batch_via_api` over the network; only SigV4-signed requests from
# principals allowed lambda:InvokeFunctionUrl get through.
resource "aws_lambda_function_url" "this" {
  function_name      = aws_lambda_function.this.function_name
  authorization_type = "AWS_IAM"
}
