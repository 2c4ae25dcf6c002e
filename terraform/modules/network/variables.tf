variable "name" {
  type        = string
  description = "Flock name."
}

variable "environment_name" {
  type        = string
  description = "Prefix of the network resources' Name tags."
}

variable "create_vpc" {
  type        = bool
  description = "Create a new VPC (true) or use existing_vpc_id and existing_subnet_ids (false)."
  default     = true
}

variable "availability_zones" {
  type        = list(string)
  description = "AZs for the new VPC's subnets, in order (zones that exist in the account: the root module looks them up or takes them from flock.yaml)."
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || (length(var.availability_zones) >= 2 && length(var.availability_zones) <= 8)
    error_message = "availability_zones must name between two and eight zones, e.g. [\"us-east-1a\", \"us-east-1b\"]."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR of the new VPC."
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be an IPv4 CIDR such as 10.0.0.0/16."
  }
}

variable "public_subnet_cidrs" {
  type        = list(string)
  description = "CIDRs of the public subnets (one per AZ, in order); null carves one block of 1/16 of vpc_cidr per zone (blocks 8 and up)."
  default     = null

  validation {
    condition     = var.public_subnet_cidrs == null || try(length(var.public_subnet_cidrs) >= 1 && alltrue([for c in var.public_subnet_cidrs : can(cidrhost(c, 0))]), false)
    error_message = "public_subnet_cidrs must list at least one IPv4 CIDR (or be null to derive them from vpc_cidr)."
  }
}

variable "private_subnet_cidrs" {
  type        = list(string)
  description = "CIDRs of the private subnets (one per AZ, in order); null carves one block of 1/16 of vpc_cidr per zone (blocks 0 to 7)."
  default     = null

  validation {
    condition     = var.private_subnet_cidrs == null || try(length(var.private_subnet_cidrs) >= 1 && alltrue([for c in var.private_subnet_cidrs : can(cidrhost(c, 0))]), false)
    error_message = "private_subnet_cidrs must list at least one IPv4 CIDR (or be null to derive them from vpc_cidr)."
  }
}

variable "max_sheep" {
  type        = number
  description = "Most instances the compute environments may run at once: every sheep subnet of a new VPC must have room for them all (0 skips the check)."
  default     = 0
}

variable "mode" {
  type        = string
  description = "How sheep of a new VPC reach AWS: \"public\" (public subnets, a public IP each, nothing admitted from outside, no NAT), \"nat\" (private subnets behind a NAT gateway) or \"private\" (private subnets, no internet, VPC endpoints). Ignored for an existing VPC."
  default     = "public"

  validation {
    condition     = contains(["public", "nat", "private"], var.mode)
    error_message = "mode must be \"public\", \"nat\" or \"private\"."
  }
}

variable "interface_endpoints" {
  type        = list(string)
  description = "Services reached through interface endpoints in \"private\" mode (S3 and DynamoDB always have free gateway endpoints): what an ECS-optimized sheep, the worker and the awslogs driver call."
  default     = ["ecr.api", "ecr.dkr", "ecs", "ecs-agent", "ecs-telemetry", "logs", "secretsmanager", "sts"]
}

variable "allow_ssh" {
  type        = bool
  description = "Open port 22 on the sheep to ssh_cidr."
  default     = false
}

variable "ssh_cidr" {
  type        = string
  description = "CIDR allowed to SSH to sheep when allow_ssh is true."
  default     = null

  validation {
    condition     = var.ssh_cidr == null || can(cidrhost(var.ssh_cidr, 0))
    error_message = "ssh_cidr must be an IPv4 CIDR such as 203.0.113.0/24."
  }
}

variable "existing_vpc_id" {
  type        = string
  description = "VPC to use when create_vpc is false."
  default     = null
}

variable "existing_vpc_cidr" {
  type        = string
  description = "CIDR of the existing VPC (informational)."
  default     = null
}

variable "existing_subnet_ids" {
  type        = list(string)
  description = "Subnets of the existing VPC where sheep run when create_vpc is false."
  default     = []
}

variable "create_efs_rules" {
  type        = bool
  description = "Allow NFS (2049) within the sheep group, for EFS mount targets."
  default     = false
}

variable "create_lustre_rules" {
  type        = bool
  description = "Allow Lustre (988, 1018-1023) within the sheep group."
  default     = false
}

variable "create_nat" {
  type        = bool
  description = "Create the NAT gateway (and its Elastic IP) that gives private sheep of a new VPC their way out; not made for public sheep or an existing VPC either way."
  default     = true
}
