locals {
  persistent = startswith(var.deployment_type, "PERSISTENT")
}

resource "aws_fsx_lustre_file_system" "this" {
  count = var.create ? 1 : 0

  storage_capacity   = var.storage_capacity_gib
  deployment_type    = var.deployment_type
  subnet_ids         = [var.subnet_id] # Lustre lives in one subnet (one AZ)
  security_group_ids = [var.security_group_id]

  # The bucket's objects appear in the file system at creation; `lfs hsm_archive` or a data
  # repository task writes changes back under export/.
  import_path = "s3://${var.bucket_name}"
  export_path = "s3://${var.bucket_name}/export"
  # SCRATCH_1 predates automatic import; the others pick up new and changed objects.
  auto_import_policy = var.deployment_type == "SCRATCH_1" ? null : "NEW_CHANGED"

  # Scratch file systems are always encrypted with an AWS key; only persistent ones take ours.
  kms_key_id                  = local.persistent ? var.kms_key_arn : null
  per_unit_storage_throughput = var.deployment_type == "PERSISTENT_1" ? var.per_unit_storage_throughput : null

  tags = { Name = var.file_system_name }
}
