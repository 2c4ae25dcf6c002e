"""Render a validated flock config into the tfvars of ``terraform/flock``.

Two steps, kept apart: :func:`tfvars_view` computes every variable (docs/contracts.md, section
1) in Python from the resolved :class:`~shepard.config.FlockConfig`; the Jinja template
``templates/flock.auto.tfvars.json.j2`` only lists the variables and writes each one through
``tojson``, so no user string can break out of its JSON value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from shepard.config.model import FlockConfig
from shepard.errors import ShepardError

TEMPLATE = "flock.auto.tfvars.json.j2"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LAMBDA_ZIP_KEYS = ("scheduler", "api")
# The emulator's (moto's) fixed account: a guard against an emulator run reaching real AWS.
EMULATOR_ACCOUNT_ID = "123456789012"
EMULATOR_MAX_RETRIES = 3  # moto answers 500 for actions it lacks; the default 25 retries hang


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


def tfvars_view(
    config: FlockConfig, lambda_zips: Mapping[str, Path], *, emulator: bool = False
) -> dict[str, Any]:
    """Every variable of ``terraform/flock`` for ``config``, as plain JSON-able values."""
    missing = [key for key in LAMBDA_ZIP_KEYS if key not in lambda_zips]
    if missing:
        raise ShepardError(
            f"while rendering the tfvars of flock {config.name}: no Lambda package for "
            f"{', '.join(missing)}. Build them first with shepard.package.build_lambda_zips."
        )
    emulated = emulator or config.target == "local"
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
        },
        "lambda": {
            "memory_mib": config.lambda_.memory_size,
            "timeout_seconds": config.lambda_.timeout_seconds,
            "scheduler_zip": str(Path(lambda_zips["scheduler"]).absolute()),
            "api_zip": str(Path(lambda_zips["api"]).absolute()),
            "log_retention_days": config.lambda_.log_retention_days,
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
            "public_subnet_cidrs": list(n.public_subnet_cidrs),
            "private_subnet_cidrs": list(n.private_subnet_cidrs),
            "make_subnets_public": n.make_subnets_public,
            "allow_ssh": n.allow_ssh,
            "ssh_cidr": n.cidr_to_allow_ssh_access_to,
            "existing_vpc_id": n.existing_vpc,
            "existing_vpc_cidr": n.existing_vpc_cidr,
            "existing_subnet_ids": list(n.existing_subnet_ids),
        },
        "emulator": {"enabled": emulated},
        "aws_provider": (
            {
                "max_retries": EMULATOR_MAX_RETRIES,
                "allowed_account_ids": [EMULATOR_ACCOUNT_ID],
                "skip_credentials_validation": True,
            }
            if emulated
            else {}
        ),
        "availability_zones": list(n.availability_zones),
    }


def render_tfvars(
    config: FlockConfig, lambda_zips: Mapping[str, Path], *, emulator: bool = False
) -> str:
    """The text of ``flock.auto.tfvars.json`` for ``config`` (JSON).

    ``emulator`` (also implied by ``target: local``) turns on the emulator switches of
    ``terraform/flock`` and the provider settings for moto.
    """
    view = tfvars_view(config, lambda_zips, emulator=emulator)
    return _environment().get_template(TEMPLATE).render(tfvars=view)
