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

output "subnet_ids_by_zone" {
  description = "One sheep subnet per zone, by zone name (new VPC) or by subnet id (existing VPC, whose zones are not looked up): where EFS puts its mount targets (one per zone)."
  value = var.create_vpc ? {
    for index, zone in var.availability_zones : zone => local.sheep_subnet_ids[index]
    if index < length(local.sheep_subnet_ids)
  } : { for id in var.existing_subnet_ids : id => id }
}

output "gateway_endpoint_ids" {
  description = "The S3 and DynamoDB gateway endpoints by service (empty for an existing VPC)."
  value       = { for service, endpoint in aws_vpc_endpoint.gateway : service => endpoint.id }
}

output "interface_endpoint_ids" {
  description = "The interface endpoints of \"private\" mode by service (empty otherwise)."
  value       = { for service, endpoint in aws_vpc_endpoint.interface : service => endpoint.id }
}

output "mode" {
  description = "The network mode of a new VPC (\"existing\" for an existing VPC)."
  value       = var.create_vpc ? var.mode : "existing"
}
