"""Render a validated flock config into the tfvars of ``terraform/flock``.

Two steps, kept apart: :func:`tfvars` computes every variable (docs/contracts.md, section 1)
in Python from the resolved :class:`~shepard.config.FlockConfig`, as one mapping that the deploy
stages add to (images, Lambda packages); :func:`tfvars_text` writes that mapping through the Jinja
template ``templates/flock.auto.tfvars.json.j2``, which only lists the variables and writes each
one through ``tojson``, so no user string can break out of its JSON value.

Nothing here knows where the flock runs: an emulator's settings are the deploy target's overlay
(:mod:`shepard.deploy.targets`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from shepard.config.model import FlockConfig
from shepard.config.rules import largest_usable_memory_mib

TEMPLATE = "flock.auto.tfvars.json.j2"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - JSON, not HTML: every value goes through tojson
        keep_trailing_newline=True,
    )
    env.policies["json.dumps_kwargs"] = {"sort_keys": True}
    return env


def tfvars(config: FlockConfig) -> dict[str, Any]:
    """Every variable of ``terraform/flock`` for ``config``, as plain JSON-able values."""
    b = config.batch
    n = config.network
    efs_provisioned = isinstance(config.efs.throughput, int)
    return {
        "name": config.name,
        "region": config.region,
        "resource_tags": dict(config.resource_tags),
        "instance_tags": {
            "project": config.instance_tags.project_name,
            "team": config.instance_tags.team_name,
            "contact": config.instance_tags.contact_email,
            "workload_type": config.instance_tags.workload_value,
        },
        "allow_docker_daemon": config.job_execution.allow_docker_daemon,
        "job": {
            "vcpus": b.desired_cpu,
            "memory_mib": b.desired_ram,
            "timeout_seconds": config.job_execution.timeout_seconds,
            "retry_attempts": config.job_execution.retry.attempts,
            "retry_on_host_reclaim": config.job_execution.retry.retry_on_host_reclaim,
            "checkpoint_interval_minutes": config.job_execution.checkpoint_interval,
            "ulimit_nofile": b.ulimits_no_files_open,
            "gpus": b.gpus,
        },
        "buckets": {
            "inputs": config.s3.inputs_bucket,
            "outputs": config.s3.outputs_bucket,
            "errors": config.s3.errors_bucket,
            "quick_deploy": config.s3.quick_deploy_bucket,
        },
        "force_destroy_buckets": config.s3.force_destroy,
        "flock_kms_key": config.encryption.kms_key == "flock",
        "table": {
            "name": config.dynamodb.table_name,
            "days_to_keep_failed_launch_indexes": (
                config.dynamodb.days_to_keep_failed_launch_indexes
            ),
            "days_to_keep_finished_jobs": config.dynamodb.days_to_keep_finished_jobs,
        },
        "secret_name": config.secrets_manager.secret_name,
        "ecr": {
            "repository_name": config.ecr.repo_name,
            "keep_images": config.ecr.keep_images,
        },
        "batch": {
            "instance_name": b.instance_name,
            "launch_template_name": b.launch_template_name,
            "queue_name": b.queue_name,
            "job_definition_name": b.job_definition_name,
            "ec2_key_pair": b.ec2_key_pair,
            "max_vcpus": b.max_cpu,
            "runnable_timeout_seconds": b.runnable_timeout_seconds,
            "update_job_timeout_minutes": b.update_job_timeout_minutes,
            "log_retention_days": b.log_retention_days,
            "compute_environments": {
                env.id: {
                    "order": order,
                    "type": env.type.upper(),
                    "instance_types": list(env.instance_types),
                    "bid_percentage": env.spot_bid_price_percent,
                    "gpu": env.gpu,
                    "min_vcpus": env.min_cpu,
                    "max_vcpus": env.max_cpu if env.max_cpu is not None else b.max_cpu,
                    "name": env.name,
                }
                for order, env in enumerate(b.compute_environments, start=1)
            },
        },
        "retries": _retries(config),
        "ebs": {
            "root_size_gib": config.ebs.size_of_root_disk,
            "container_storage_size_gib": config.ebs.size_of_container_storage_disk,
        },
        "efs": {
            "create": config.efs.create,
            "name": config.efs.name,
            "throughput_mode": "provisioned" if efs_provisioned else config.efs.throughput,
            "provisioned_mibps": config.efs.throughput if efs_provisioned else None,
        },
        "lustre": {
            "create": config.lustre.create,
            "name": config.lustre.name,
            "storage_capacity_gib": config.lustre.storage_capacity,
            "bucket_name": config.lustre.bucket_name,
            "existing_bucket": config.lustre.existing_bucket,
            "deployment_type": config.lustre.deployment_type,
        },
        "sqs": {
            "name": config.sqs.name,
            "max_receive_count": config.sqs.max_receive_count,
            "visibility_timeout_seconds": config.sqs.visibility_timeout_seconds,
            "batch_size": config.scheduler.batch_size,
            "batching_window_seconds": config.scheduler.batching_window_seconds,
        },
        "lambda": {
            "memory_mib": config.lambda_.memory_size,
            "timeout_seconds": config.lambda_.timeout_seconds,
            "log_retention_days": config.lambda_.log_retention_days,
        },
        "notifications": {
            "emails": list(config.notifications.emails),
            "https_endpoints": list(config.notifications.https_endpoints),
        },
        "extra_iam_policy_json": (
            json.dumps(config.extra_iam_policy, sort_keys=True)
            if config.extra_iam_policy is not None
            else None
        ),
        "network": {
            "create_vpc": n.create_new_vpc,
            "environment_name": n.environment_name,
            "vpc_cidr": n.vpc_cidr,
            # None: terraform/modules/network sizes them (one sixteenth of vpc_cidr per zone).
            "public_subnet_cidrs": list(n.public_subnet_cidrs) or None,
            "private_subnet_cidrs": list(n.private_subnet_cidrs) or None,
            "make_subnets_public": n.make_subnets_public,
            "mode": n.mode,
            "allow_ssh": n.allow_ssh,
            "ssh_cidr": n.cidr_to_allow_ssh_access_to,
            "existing_vpc_id": n.existing_vpc,
            "existing_vpc_cidr": n.existing_vpc_cidr,
            "existing_subnet_ids": list(n.existing_subnet_ids),
        },
        "images": {},
        # Not given: terraform/flock looks up the zones that exist in the account.
        "availability_zones": list(n.availability_zones) or None,
    }


def _retries(config: FlockConfig) -> dict[str, Any]:
    """The ladder to on-demand and the out-of-memory retries (shepard.joblayer.retry)."""
    oom = config.oom
    ceiling = largest_usable_memory_mib(
        t for env in config.batch.compute_environments for t in env.instance_types
    )
    caps = [m for m in (oom.max_memory_mib, ceiling) if m is not None]
    return {
        "spot_attempts": config.spot.attempts or 0,
        "on_demand_queue": config.spot.attempts is not None and config.spot.then == "on_demand",
        "oom_factor": oom.factor if oom.retry else 0,
        "oom_max_memory_mib": min(caps) if oom.retry and caps else 0,
    }


def tfvars_text(values: Mapping[str, Any]) -> str:
    """The text of ``flock.auto.tfvars.json`` (JSON) for the variables ``values``."""
    return _environment().get_template(TEMPLATE).render(tfvars=values)
