output "vpc_id" {
  description = "VPC of the flock."
  value       = local.vpc_id
}

output "vpc_cidr" {
  description = "CIDR of the VPC (null for an existing VPC whose CIDR was not given)."
  value       = local.vpc_cidr
}

output "subnet_ids" {
  description = "Subnets where sheep run (and EFS mount targets, Lustre live)."
  value       = local.sheep_subnet_ids
}

output "public_subnet_ids" {
  description = "Public subnets of a new VPC (empty for an existing VPC)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets of a new VPC (empty for an existing VPC)."
  value       = aws_subnet.private[*].id
}

output "security_group_id" {
  description = "Security group of the sheep (and of the file systems)."
  value       = aws_security_group.sheep.id
}

output "nat_gateway_id" {
  description = "The NAT gateway, null when none was created."
  value       = try(aws_nat_gateway.this[0].id, null)
}
