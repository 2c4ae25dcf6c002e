"""Driving Terraform: finding it and its provider mirror, init/plan/apply/destroy/output."""
