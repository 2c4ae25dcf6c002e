"""Run the CLI in-process, as a user would, and read what it printed."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shepard.cli import main
from shepard.joblayer.settings import FlockSettings
from shepard.profiles import ProfileStore


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(argv: list[str], env: Mapping[str, str], stdin: str = "") -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return Run(code, out.getvalue(), err.getvalue())


def cli_env(config_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for main(): this process's (pointed at the emulator by ``aws``), a private
    config folder, plain output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEPARD_")}
    env.update({"SHEPARD_CONFIG_DIR": str(config_dir), "NO_COLOR": "1"})
    env.update(extra)
    return env


def write_flock_profile(env: Mapping[str, str], settings: FlockSettings, **extra: str) -> str:
    """A current profile naming the test flock's resources (as auto_configure would write)."""
    store = ProfileStore.from_env(env)
    name = settings.flock
    store.save(
        name,
        {
            "shepard_cloudformation_stack_name": settings.flock,
            "shepard_s3_bucket_to_upload_to": settings.inputs_bucket,
            "shepard_s3_bucket_for_results": settings.outputs_bucket,
            "shepard_errors_bucket": settings.errors_bucket,
            "shepard_quick_deploy_bucket": settings.quick_deploy_bucket,
            "shepard_dynamo_db_to_query": settings.table_name,
            "shepard_secret_store": f"{settings.flock}-secrets",
            "shepard_region": "us-east-1",
            **extra,
        },
    )
    store.set_current(name)
    return name
