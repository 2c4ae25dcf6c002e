output "function_name" {
  description = "Name of the API function (the profile's shepard_lambda_to_invoke)."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the API function."
  value       = aws_lambda_function.this.arn
}

output "endpoint_url" {
  description = "HTTPS URL of the function (AWS_IAM auth)."
  value       = aws_lambda_function_url.this.function_url
}

output "log_group_arn" {
  description = "ARN of the function's log group."
  value       = aws_cloudwatch_log_group.this.arn
}
