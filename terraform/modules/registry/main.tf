locals {
  # Known at plan time even when the flock's key is created in the same apply.
  flock_key = var.use_kms_key != null ? var.use_kms_key : var.kms_key_arn != null
}

resource "aws_ecr_repository" "this" {
  #checkov:skip=CKV_AWS_136:encryption.kms_key aws_managed (the default) keeps ECR's AES256 encryption at rest; kms_key flock uses the flock's KMS key (docs/decisions/0011-aws-managed-keys.md).
  #checkov:skip=CKV_AWS_51:deploy moves the payload-latest and worker-latest tags to each new image, so tags must be mutable.
  name                 = var.repository_name
  image_tag_mutability = "MUTABLE"
  force_delete         = var.force_delete

  # The flock's key, or ECR's default AES256 (S3-managed keys) without one.
  encryption_configuration {
    encryption_type = local.flock_key ? "KMS" : "AES256"
    kms_key         = var.kms_key_arn
  }

  image_scanning_configuration {
    scan_on_push = true
  }
}

# Every deploy pushes new images; the policy expires old ones without ever touching an image a
# job definition uses. ECR applies the rules in rulePriority order, and an image that matches
# the tag selection of a rule can never be expired by a rule of lower priority, so:
#   1..k   one rule per protected tag (payload-latest, worker-latest and the tags the job
#          definition names): a tag names a single image, so "more than 1" never expires it,
#          and having matched, that image is out of reach of the rules below;
#   then   per tag prefix (payload-, worker-): keep the newest keep_images, expire the rest;
#   last   untagged images (layers of replaced tags) expire a day after their push.
# Images with other tags are kept.
locals {
  protected_tags = distinct(var.protected_tags)

  protect_rules = [
    for index, tag in local.protected_tags : {
      rulePriority = index + 1
      description  = "Never expire ${tag}: a job definition uses it"
      selection = {
        tagStatus      = "tagged"
        tagPatternList = [tag]
        countType      = "imageCountMoreThan"
        countNumber    = 1
      }
      action = { type = "expire" }
    }
  ]

  prefix_rules = [
    for index, prefix in var.tag_prefixes : {
      rulePriority = length(local.protected_tags) + index + 1
      description  = "Keep the newest ${var.keep_images} ${prefix}* images"
      selection = {
        tagStatus     = "tagged"
        tagPrefixList = [prefix]
        countType     = "imageCountMoreThan"
        countNumber   = var.keep_images
      }
      action = { type = "expire" }
    }
  ]

  untagged_rule = {
    rulePriority = length(local.protected_tags) + length(var.tag_prefixes) + 1
    description  = "Expire untagged images one day after their push"
    selection = {
      tagStatus   = "untagged"
      countType   = "sinceImagePushed"
      countUnit   = "days"
      countNumber = var.untagged_expire_days
    }
    action = { type = "expire" }
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = concat(local.protect_rules, local.prefix_rules, [local.untagged_rule])
  })
}
