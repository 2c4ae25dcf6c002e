data "aws_partition" "current" {}

locals {
  # The key's own ARN carries the account id, so the key policy needs no aws_caller_identity
  # lookup (which would call STS and break offline plans).
  account_id = var.create ? split(":", aws_kms_key.this[0].arn)[4] : null
  partition  = data.aws_partition.current.partition
}

# encryption.kms_key: flock creates the key; aws_managed (the default) creates nothing here and
# every module falls back to the AWS managed or AWS owned key of its service
# (docs/decisions/0011-aws-managed-keys.md).
resource "aws_kms_key" "this" {
  #checkov:skip=CKV2_AWS_64:The key policy is set by aws_kms_key_policy.this below, once the account id is known from the key's ARN.
  count = var.create ? 1 : 0

  description             = "shepard flock ${var.name}: buckets, job table, queues, secret, logs, registry"
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_in_days
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  count = var.create ? 1 : 0

  name          = "alias/shepard-${var.name}"
  target_key_id = aws_kms_key.this[0].key_id
}

data "aws_iam_policy_document" "key" {
  count = var.create ? 1 : 0

  #checkov:skip=CKV_AWS_109:This is a key policy: "*" as resource means this key only, and the account root statement is AWS's default key policy.
  #checkov:skip=CKV_AWS_111:This is a key policy: "*" as resource means this key only; service principals are limited by conditions.
  #checkov:skip=CKV_AWS_356:This is a key policy: "*" as resource means this key only.
  # Without this statement only the key policy could grant use of the key; with it, the
  # least-privilege IAM policies of the flock's roles decide who uses the key.
  statement {
    sid       = "AccountRootAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts the flock's log groups with this key (the Lambdas' groups and the
  # Batch jobs' group); it may only do so for those groups.
  statement {
    sid = "CloudWatchLogsEncryptsFlockLogGroups"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [
        for prefix in var.log_group_prefixes :
        "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:${prefix}*"
      ]
    }
  }

  # S3 sends the inputs bucket's event notifications to the KMS-encrypted scheduler queue and
  # needs a data key for that. The statement is the one the Amazon S3 user guide gives for an
  # SQS destination encrypted with a customer managed key ("Granting permissions to publish
  # event notification messages to a destination", AWS KMS key policy): these two actions,
  # aws:SourceAccount and aws:SourceArn naming the bucket, nothing else.
  dynamic "statement" {
    for_each = length(var.s3_notification_bucket_arns) > 0 ? [1] : []
    content {
      sid       = "S3NotifiesEncryptedQueue"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = ["*"]
      principals {
        type        = "Service"
        identifiers = ["s3.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
      condition {
        test     = "ArnLike"
        variable = "aws:SourceArn"
        values   = var.s3_notification_bucket_arns
      }
    }
  }

  # EventBridge sends the flock's Batch job events to the KMS-encrypted events queue and needs a
  # data key for that (EventBridge user guide, "Amazon SQS permissions": an encrypted queue's
  # key grants events.amazonaws.com these two actions), only for the flock's own rules.
  dynamic "statement" {
    for_each = length(var.eventbridge_rule_names) > 0 ? [1] : []
    content {
      sid       = "EventBridgeSendsToEncryptedQueue"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = ["*"]
      principals {
        type        = "Service"
        identifiers = ["events.amazonaws.com"]
      }
      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = [for rule in var.eventbridge_rule_names : "arn:${local.partition}:events:${var.region}:${local.account_id}:rule/${rule}"]
      }
    }
  }
}

resource "aws_kms_key_policy" "this" {
  count = var.create ? 1 : 0

  key_id = aws_kms_key.this[0].key_id
  policy = data.aws_iam_policy_document.key[0].json
}

# A flock applied before encryption.kms_key existed keeps its key (and the data it encrypts).
moved {
  from = aws_kms_key.this
  to   = aws_kms_key.this[0]
}

moved {
  from = aws_kms_alias.this
  to   = aws_kms_alias.this[0]
}

moved {
  from = aws_kms_key_policy.this
  to   = aws_kms_key_policy.this[0]
}
