module "function" {
  source = "../lambda_function"

  function_name        = "${var.name}-api"
  description          = "Batches jobs sent as JSON to shepard flock ${var.name}"
  role_arn             = var.role_arn
  zip_path             = var.zip_path
  kms_key_arn          = var.kms_key_arn
  memory_mib           = var.lambda_memory_mib
  timeout_seconds      = var.lambda_timeout_seconds
  log_retention_days   = var.log_retention_days
  reserved_concurrency = var.reserved_concurrency
  environment          = var.environment
}

# HTTPS endpoint for `batch_via_api` over the network; only SigV4-signed requests get through.
resource "aws_lambda_function_url" "this" {
  function_name      = module.function.function_name
  authorization_type = "AWS_IAM"
}

# What a caller of the API needs in its identity policy. Function URLs created since October
# 2025 need both lambda:InvokeFunctionUrl and lambda:InvokeFunction (AWS Lambda developer
# guide, "Control access to Lambda function URLs"); the CLI's direct Invoke needs the second.
data "aws_iam_policy_document" "caller" {
  statement {
    sid       = "InvokeFlockApi"
    actions   = ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"]
    resources = [module.function.function_arn]
  }
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
