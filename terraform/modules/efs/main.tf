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

# One mount target per zone (EFS allows one per zone), keyed by zone so that adding or
# removing a zone touches only that zone's target.
resource "aws_efs_mount_target" "this" {
  for_each = var.create ? var.subnets : {}

  file_system_id  = aws_efs_file_system.this[0].id
  subnet_id       = each.value
  security_groups = [var.security_group_id]
}

# Clients reach the file system only through its mount targets and only over TLS (the sheep
# mount it with amazon-efs-utils' `-o tls`). A policy with only the Deny would take away the
# default access of clients without IAM identity, so the Allow restates it.
data "aws_iam_policy_document" "file_system" {
  count = var.create ? 1 : 0

  statement {
    sid       = "ClientsThroughMountTargets"
    effect    = "Allow"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"]
    resources = [aws_efs_file_system.this[0].arn]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "elasticfilesystem:AccessedViaMountTarget"
      values   = ["true"]
    }
  }

  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["*"]
    resources = [aws_efs_file_system.this[0].arn]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_efs_file_system_policy" "this" {
  count = var.create && var.file_system_policy ? 1 : 0

  file_system_id = aws_efs_file_system.this[0].id
  policy         = data.aws_iam_policy_document.file_system[0].json
}
