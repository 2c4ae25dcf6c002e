locals {
  # Known at plan time even when the flock's key is created in the same apply.
  flock_key = var.use_kms_key != null ? var.use_kms_key : var.kms_key_arn != null
  # bucket_prefix may be at most 37 characters: shorten the flock name, never the role, so the
  # generated name still says what the bucket is for.
  prefixes = {
    for role in keys(local.roles) :
    role => "${substr(var.name, 0, min(length(var.name), 35 - length(role)))}-${role}-"
  }

  roles = merge(
    {
      inputs       = { name = var.bucket_names.inputs, expire_noncurrent = true, flock_key = true }
      outputs      = { name = var.bucket_names.outputs, expire_noncurrent = false, flock_key = true }
      errors       = { name = var.bucket_names.errors, expire_noncurrent = true, flock_key = true }
      quick-deploy = { name = var.bucket_names.quick_deploy, expire_noncurrent = false, flock_key = true }
    },
    # FSx for Lustre imports from and exports to this bucket through its service-linked role
    # AWSServiceRoleForFSxS3Access_<file system id>. FSx supports SSE-S3 buckets as they are;
    # an SSE-KMS bucket needs a key-policy statement naming that role, whose name holds the
    # id of a file system that itself needs the bucket first. So the Lustre bucket uses SSE-S3.
    var.create_lustre_bucket ? { lustre = { name = var.lustre_bucket_name, expire_noncurrent = false, flock_key = false } } : {},
  )
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_145:encryption.kms_key aws_managed (the default) encrypts with SSE-S3 (AES256): aws/s3 would add KMS request charges and no control; kms_key flock uses SSE-KMS with the flock's key (docs/decisions/0011-aws-managed-keys.md).
  #checkov:skip=CKV_AWS_144:Cross-region replication is a site choice; inputs and errors are transient and outputs are retrieved by the CLI.
  #checkov:skip=CKV2_AWS_62:Only the inputs bucket triggers work (its notification is in the scheduler module).
  #checkov:skip=CKV_AWS_18:Access logging is optional (access_logs_bucket); it needs a log bucket that the flock does not own.
  for_each = local.roles

  bucket        = each.value.name
  bucket_prefix = each.value.name == null ? local.prefixes[each.key] : null
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced" # no ACLs: IAM and bucket policies decide
  }
}

# With the flock's key (encryption.kms_key: flock) its buckets use SSE-KMS; without one, SSE-S3
# (AES256, S3's own keys): SSE-KMS with the AWS managed aws/s3 key would add KMS request charges
# and a key whose policy nobody can change, so it gives no control SSE-S3 lacks
# (docs/decisions/0011-aws-managed-keys.md).
resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.roles[each.key].flock_key && local.flock_key ? "aws:kms" : "AES256"
      kms_master_key_id = local.roles[each.key].flock_key ? var.kms_key_arn : null
    }
    # A bucket key cuts KMS requests (and cost) by orders of magnitude for many small objects.
    bucket_key_enabled = local.roles[each.key].flock_key && local.flock_key
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

# Noncurrent versions of inputs and error reports are of no use after a while; every bucket
# drops incomplete multipart uploads. lifecycle_rules = false leaves them out (the local flock:
# the provider waits 55 s per bucket for them against moto).
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = var.lifecycle_rules ? aws_s3_bucket.this : {}

  bucket = each.value.id

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  dynamic "rule" {
    for_each = local.roles[each.key].expire_noncurrent ? [1] : []
    content {
      id     = "expire-noncurrent-versions"
      status = "Enabled"
      filter {}
      noncurrent_version_expiration {
        noncurrent_days = var.noncurrent_version_expiration_days
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_logging" "this" {
  for_each = var.access_logs_bucket == null ? {} : aws_s3_bucket.this

  bucket        = each.value.id
  target_bucket = var.access_logs_bucket
  target_prefix = "${each.value.id}/"
}

# Deny every request that does not use TLS. enforce_tls = false leaves it out (a local flock
# served over plain http: moto ignores the condition and would deny every request).
data "aws_iam_policy_document" "tls_only" {
  for_each = var.enforce_tls ? aws_s3_bucket.this : {}

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "tls_only" {
  for_each = data.aws_iam_policy_document.tls_only

  bucket = aws_s3_bucket.this[each.key].id
  policy = each.value.json

  # S3 rejects a policy put while the public access block is being written.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
