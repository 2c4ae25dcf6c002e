output "file_system_id" {
  description = "EFS id, null when not created."
  value       = try(aws_efs_file_system.this[0].id, null)
}

output "file_system_arn" {
  description = "EFS ARN, null when not created."
  value       = try(aws_efs_file_system.this[0].arn, null)
}

output "dns_name" {
  description = "DNS name sheep mount, null when not created; known only once every mount target and the TLS-only policy exist, so sheep (whose user data mounts it) start after them."
  value       = try(aws_efs_file_system.this[0].dns_name, null)
  depends_on  = [aws_efs_mount_target.this, aws_efs_file_system_policy.this]
}

output "mount_target_ids" {
  description = "Mount target ids by zone (empty when not created)."
  value       = { for zone, target in aws_efs_mount_target.this : zone => target.id }
}
