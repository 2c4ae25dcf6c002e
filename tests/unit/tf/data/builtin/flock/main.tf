variable "name" {
  type = string
}

variable "sleep_seconds" {
  type    = number
  default = 0
}

variable "fail" {
  type    = bool
  default = false
}

variable "images" {
  type    = map(string)
  default = {}
}

resource "terraform_data" "images" {
  count = length(var.images) > 0 ? 1 : 0
  input = var.images
}

resource "terraform_data" "sheep" {
  count = 3
  input = "${var.name}-${count.index}"
}

resource "terraform_data" "slow" {
  count = var.sleep_seconds > 0 ? 1 : 0
  provisioner "local-exec" {
    command = "sleep ${var.sleep_seconds}"
  }
}

resource "terraform_data" "broken" {
  count = var.fail ? 1 : 0
  provisioner "local-exec" {
    command = "echo the sheep escaped >&2; exit 3"
  }
}

output "names" {
  value = terraform_data.sheep[*].output
}

output "nothing" {
  value = null
}

# What the deploy commands read after an apply (docs/contracts.md section 2, in miniature).
output "flock_name" {
  value = var.name
}

output "ecr_repository_url" {
  value = "123456789012.dkr.ecr.us-east-1.amazonaws.com/${var.name}"
}

output "cli_profile" {
  value = {
    shepard_cloudformation_stack_name = var.name
    shepard_region                    = "us-east-1"
  }
}

output "images" {
  value = var.images
}
