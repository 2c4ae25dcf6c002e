"""shepard-tf: turn a container into a batch workflow on AWS, deployed with Terraform."""

__version__ = "0.1.0"
