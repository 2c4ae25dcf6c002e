resource "aws_dynamodb_table" "this" {
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

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  deletion_protection_enabled = var.deletion_protection
}
