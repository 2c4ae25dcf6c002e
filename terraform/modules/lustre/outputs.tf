output "file_system_id" {
  description = "Lustre id, null when not created."
  value       = try(aws_fsx_lustre_file_system.this[0].id, null)
}

output "file_system_arn" {
  description = "Lustre ARN, null when not created."
  value       = try(aws_fsx_lustre_file_system.this[0].arn, null)
}

output "dns_name" {
  description = "DNS name sheep mount, null when not created."
  value       = try(aws_fsx_lustre_file_system.this[0].dns_name, null)
}

output "mount_name" {
  description = "Lustre mount name, null when not created."
  value       = try(aws_fsx_lustre_file_system.this[0].mount_name, null)
}
