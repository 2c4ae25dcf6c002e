locals {
  # Known at plan time even when the flock's key is created in the same apply.
  flock_key = var.use_kms_key != null ? var.use_kms_key : var.kms_key_arn != null
}

resource "aws_dynamodb_table" "this" {
  #checkov:skip=CKV_AWS_119:encryption.kms_key aws_managed (the default) keeps DynamoDB's default encryption at rest with an AWS owned key; kms_key flock uses the flock's customer managed key (docs/decisions/0011-aws-managed-keys.md).
  name         = var.table_name
  billing_mode = "PAY_PER_REQUEST" # jobs come in bursts; nothing to size or pay for when idle
  hash_key     = "UUID"

  attribute {
    name = "UUID"
    type = "S"
  }

  attribute {
    name = "PHASE"
    type = "S"
  }

  attribute {
    name = "CREATED_AT"
    type = "S"
  }

  attribute {
    name = "BATCH_ID"
    type = "S"
  }

  # `query` reads queued/running jobs through this index instead of scanning the whole history.
  global_secondary_index {
    name            = var.status_index_name
    hash_key        = "PHASE"
    range_key       = "CREATED_AT"
    projection_type = "ALL"
  }

  # `query --batch`, `wait --batch` and `cancel --batch` read the jobs of one submission through
  # this index. Records without a BATCH_ID (older jobs) are simply not in it: a sparse index.
  global_secondary_index {
    name            = var.batch_index_name
    hash_key        = "BATCH_ID"
    range_key       = "CREATED_AT"
    projection_type = "ALL"
  }

  # Finished and abandoned job records expire by themselves (set by the job layer).
  ttl {
    attribute_name = "EXPIRES_AT"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  # With the flock's key: SSE with that key. Without (kms_key_arn null): DynamoDB's default
  # encryption at rest with an AWS owned key (enabled = false means that, not "unencrypted").
  server_side_encryption {
    enabled     = local.flock_key
    kms_key_arn = var.kms_key_arn
  }

  deletion_protection_enabled = var.deletion_protection
}
