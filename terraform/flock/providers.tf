# No backend block: the shepard-tf CLI writes backend_override.tf into its working copy, and a
# plain `terraform apply` here uses the local backend (or whatever the caller configures).
provider "aws" {
  region = var.region

  max_retries                 = var.aws_provider.max_retries
  skip_credentials_validation = var.aws_provider.skip_credentials_validation
  skip_requesting_account_id  = var.aws_provider.skip_requesting_account_id
  allowed_account_ids         = var.aws_provider.allowed_account_ids

  # An emulator may be reached as localhost, where virtual-hosted bucket names do not resolve.
  s3_use_path_style = var.aws_provider.s3_use_path_style

  default_tags {
    tags = merge(var.resource_tags, { "shepard:flock" = var.name })
  }
}
