output "function_name" {
  description = "Name of the API function (the profile's shepard_lambda_to_invoke)."
  value       = module.function.function_name
}

output "function_arn" {
  description = "ARN of the API function."
  value       = module.function.function_arn
}

output "endpoint_url" {
  description = "HTTPS URL of the function (AWS_IAM auth: callers need lambda:InvokeFunctionUrl and lambda:InvokeFunction, see caller_policy_json)."
  value       = aws_lambda_function_url.this.function_url
}

output "log_group_arn" {
  description = "ARN of the function's log group."
  value       = module.function.log_group_arn
}

output "caller_actions" {
  description = "IAM actions a caller of the API needs on the function: both, for function URLs created since October 2025."
  value       = ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"]
}

output "caller_policy_json" {
  description = "Identity policy (JSON) that lets a user or role call the API: lambda:InvokeFunctionUrl and lambda:InvokeFunction on the function."
  value       = data.aws_iam_policy_document.caller.json
}
