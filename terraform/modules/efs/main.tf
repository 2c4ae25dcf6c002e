resource "aws_efs_file_system" "this" {
  #checkov:skip=CKV2_AWS_18:EFS holds job scratch and shared data; backups are a site choice (AWS Backup plan) outside the flock.
  count = var.create ? 1 : 0

  creation_token                  = var.file_system_name
  encrypted                       = true
  kms_key_id                      = var.kms_key_arn
  throughput_mode                 = var.throughput_mode
  provisioned_throughput_in_mibps = var.throughput_mode == "provisioned" ? var.provisioned_mibps : null
  tags                            = { Name = var.file_system_name }
}

# One mount target per sheep subnet, so every sheep mounts in its own AZ.
resource "aws_efs_mount_target" "this" {
  count = var.create ? length(var.subnet_ids) : 0

  file_system_id  = aws_efs_file_system.this[0].id
  subnet_id       = var.subnet_ids[count.index]
  security_groups = [var.security_group_id]
}
