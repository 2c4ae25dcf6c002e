locals {
  prefix = var.environment_name

  vpc_id   = var.create_vpc ? aws_vpc.this[0].id : var.existing_vpc_id
  vpc_cidr = var.create_vpc ? aws_vpc.this[0].cidr_block : var.existing_vpc_cidr

  # How sheep of a new VPC reach AWS and image registries (docs/decisions/0009-network-mode.md):
  # "public": public subnets, a public IP each, nothing admitted from outside (free when idle);
  # "nat": private subnets behind one NAT gateway (about $36 a month idle);
  # "private": private subnets without internet, AWS reached through VPC endpoints (interface
  # endpoints are billed per hour and zone). An existing VPC brings its own routes.
  public_sheep = var.create_vpc && var.mode == "public"

  sheep_subnet_ids = var.create_vpc ? (
    local.public_sheep ? aws_subnet.public[*].id : aws_subnet.private[*].id
  ) : var.existing_subnet_ids

  # A NAT gateway only serves private sheep of a new VPC in "nat" mode; create_nat = false (an
  # emulator) leaves it out.
  create_nat = var.create_vpc && var.mode == "nat" && var.create_nat

  # Interface endpoints of "private" mode, one network interface per zone each.
  interface_endpoints = var.create_vpc && var.mode == "private" ? toset(var.interface_endpoints) : toset([])

  # Subnets not given are carved out of the VPC CIDR, one per zone, each 1/16 of the VPC
  # (/20 of a /16: about 4000 addresses), so a subnet holds every sheep the compute
  # environments may start even if Batch puts them all in one zone. Private subnets take the
  # first eight blocks, public ones the next eight.
  zone_count  = length(var.availability_zones)
  vpc_newbits = 4
  private_subnet_cidrs = var.private_subnet_cidrs != null ? var.private_subnet_cidrs : [
    for i in range(local.zone_count) : cidrsubnet(var.vpc_cidr, local.vpc_newbits, i)
  ]
  public_subnet_cidrs = var.public_subnet_cidrs != null ? var.public_subnet_cidrs : [
    for i in range(local.zone_count) : cidrsubnet(var.vpc_cidr, local.vpc_newbits, 8 + i)
  ]
  sheep_subnet_cidrs = local.public_sheep ? local.public_subnet_cidrs : local.private_subnet_cidrs

  # AWS keeps 5 addresses of every subnet; EFS mount targets, Lustre and the NAT gateway take
  # a few more.
  subnet_capacity = {
    for cidr in local.sheep_subnet_cidrs : cidr => pow(2, 32 - tonumber(split("/", cidr)[1])) - 5 - 8
  }
  small_subnets = [for cidr, capacity in local.subnet_capacity : cidr if capacity < var.max_sheep]
}

data "aws_region" "current" {}

resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:Flow logs are a site choice (cost, destination); the sheep security group already admits nothing from outside unless SSH is asked for.
  count = var.create_vpc ? 1 : 0

  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # EFS and Lustre are mounted by DNS name
  tags                 = { Name = "${local.prefix}-vpc" }
}

# Take every rule away from the VPC's default security group so nothing can use it by accident.
resource "aws_default_security_group" "this" {
  count  = var.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${local.prefix}-default-closed" }
}

resource "aws_subnet" "public" {
  #checkov:skip=CKV_AWS_130:Public subnets hold the NAT gateway, and the sheep in "public" mode (public IPs; their security group admits nothing from outside).
  count = var.create_vpc ? length(local.public_subnet_cidrs) : 0

  vpc_id                  = aws_vpc.this[0].id
  cidr_block              = local.public_subnet_cidrs[count.index]
  availability_zone       = var.availability_zones[count.index % length(var.availability_zones)]
  map_public_ip_on_launch = local.public_sheep
  tags                    = { Name = "${local.prefix}-public-${count.index + 1}" }

  lifecycle {
    precondition {
      condition     = !local.public_sheep || length(local.small_subnets) == 0
      error_message = "The public subnets ${join(", ", local.small_subnets)} hold fewer addresses than the ${var.max_sheep} sheep the compute environments may start (network mode \"public\" puts the sheep there). Give larger network.public_subnet_cidrs, or leave them out to size them from vpc_cidr."
    }
  }
}

resource "aws_subnet" "private" {
  count = var.create_vpc ? length(local.private_subnet_cidrs) : 0

  vpc_id            = aws_vpc.this[0].id
  cidr_block        = local.private_subnet_cidrs[count.index]
  availability_zone = var.availability_zones[count.index % length(var.availability_zones)]
  tags              = { Name = "${local.prefix}-private-${count.index + 1}" }

  lifecycle {
    precondition {
      condition     = local.public_sheep || length(local.small_subnets) == 0
      error_message = "The private subnets ${join(", ", local.small_subnets)} hold fewer addresses than the ${var.max_sheep} sheep the compute environments may start. Give larger network.private_subnet_cidrs, or leave them out to size them from vpc_cidr."
    }
  }
}

resource "aws_internet_gateway" "this" {
  count  = var.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${local.prefix}-igw" }
}

resource "aws_route_table" "public" {
  count  = var.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${local.prefix}-public" }
}

resource "aws_route" "public_internet" {
  count                  = var.create_vpc ? 1 : 0
  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count          = var.create_vpc ? length(local.public_subnet_cidrs) : 0
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

# One NAT gateway, not one per AZ: sheep only pull images and talk to AWS APIs, and an AZ
# outage pauses the queue rather than losing jobs.
resource "aws_eip" "nat" {
  count  = local.create_nat ? 1 : 0
  domain = "vpc"
  tags   = { Name = "${local.prefix}-nat" }
}

resource "aws_nat_gateway" "this" {
  count         = local.create_nat ? 1 : 0
  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public[0].id
  tags          = { Name = "${local.prefix}-nat" }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "private" {
  count  = var.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${local.prefix}-private" }
}

resource "aws_route" "private_nat" {
  count                  = local.create_nat ? 1 : 0
  route_table_id         = aws_route_table.private[0].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[0].id
}

resource "aws_route_table_association" "private" {
  count          = var.create_vpc ? length(local.private_subnet_cidrs) : 0
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[0].id
}

# S3 and DynamoDB through free gateway endpoints instead of the NAT gateway (which charges per
# GB): job zips, outputs, ECR image layers (stored in S3) and the job table. Public route tables
# get them too, so public sheep keep that traffic inside AWS's network as well.
resource "aws_vpc_endpoint" "gateway" {
  for_each = var.create_vpc ? toset(["s3", "dynamodb"]) : toset([])

  vpc_id            = aws_vpc.this[0].id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.${each.key}"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = concat(aws_route_table.private[*].id, aws_route_table.public[*].id)
  tags              = { Name = "${local.prefix}-${each.key}" }
}

# "private" mode: ECR, ECS, CloudWatch Logs, Secrets Manager and STS through interface
# endpoints in the sheep's subnets (private DNS: the usual service names resolve to them).
resource "aws_security_group" "endpoints" {
  count       = length(local.interface_endpoints) > 0 ? 1 : 0
  name_prefix = "${local.prefix}-endpoints-"
  description = "Interface endpoints of shepard flock ${var.name}: HTTPS from the sheep"
  vpc_id      = local.vpc_id
  tags        = { Name = "${local.prefix}-endpoints" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  count                        = length(local.interface_endpoints) > 0 ? 1 : 0
  security_group_id            = aws_security_group.endpoints[0].id
  description                  = "HTTPS from the sheep to the interface endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.sheep.id
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = aws_vpc.this[0].id
  service_name        = "com.amazonaws.${data.aws_region.current.name}.${each.key}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints[0].id]
  tags                = { Name = "${local.prefix}-${each.key}" }
}

# The sheep's security group: all egress, and ingress only for what the flock asked for.
resource "aws_security_group" "sheep" {
  #checkov:skip=CKV2_AWS_5:Attached to the compute environments, EFS mount targets and Lustre in other modules (checkov does not follow module outputs).
  name_prefix = "${local.prefix}-sheep-"
  description = "Sheep of shepard flock ${var.name}: egress, SSH when asked, NFS/Lustre within the group"
  vpc_id      = local.vpc_id
  tags        = { Name = "${local.prefix}-sheep" }

  # Compute environments reference the group: make the new one before the old one goes.
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "all" {
  #checkov:skip=CKV_AWS_382:Sheep pull arbitrary payload images and call AWS APIs; egress cannot be narrowed in general.
  security_group_id = aws_security_group.sheep.id
  description       = "Sheep reach ECR, S3, DynamoDB, Batch and image registries"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  count             = var.allow_ssh ? 1 : 0
  security_group_id = aws_security_group.sheep.id
  description       = "SSH to sheep from the configured CIDR"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = var.ssh_cidr
}

resource "aws_vpc_security_group_ingress_rule" "nfs" {
  count                        = var.create_efs_rules ? 1 : 0
  security_group_id            = aws_security_group.sheep.id
  description                  = "NFS from sheep to the EFS mount targets"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.sheep.id
}

resource "aws_vpc_security_group_ingress_rule" "lustre" {
  for_each = var.create_lustre_rules ? { "988" = [988, 988], "1018-1023" = [1018, 1023] } : {}

  security_group_id            = aws_security_group.sheep.id
  description                  = "Lustre ${each.key} between sheep and the file system"
  ip_protocol                  = "tcp"
  from_port                    = each.value[0]
  to_port                      = each.value[1]
  referenced_security_group_id = aws_security_group.sheep.id
}
