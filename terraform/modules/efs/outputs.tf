output "file_system_id" {
  description = "EFS id, null when not created."
  value       = try(aws_efs_file_system.this[0].id, null)
}

output "file_system_arn" {
  description = "EFS ARN, null when not created."
  value       = try(aws_efs_file_system.this[0].arn, null)
}

output "dns_name" {
  description = "DNS name sheep mount, null when not created."
  value       = try(aws_efs_file_system.this[0].dns_name, null)
}

output "mount_target_ids" {
  description = "Mount target ids (empty when not created)."
  value       = aws_efs_mount_target.this[*].id
}
