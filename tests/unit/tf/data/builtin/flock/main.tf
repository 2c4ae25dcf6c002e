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
