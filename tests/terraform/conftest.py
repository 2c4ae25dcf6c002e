"""Fixtures of the Terraform suite: offline plans of terraform/flock in a temporary copy."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tftest

from tests.support.flock_checks import copy_terraform_tree, write_lambda_zips

CASES = Path(__file__).resolve().parent / "cases"

# Offline: fake credentials, no STS call, no endpoint (tftest merges its env over os.environ,
# so AWS_ENDPOINT_URL must be removed from os.environ's copy, not just left out).
OFFLINE_PROVIDER = {"skip_credentials_validation": True, "skip_requesting_account_id": True}


def offline_env(tf_cli_config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "TF_CLI_CONFIG_FILE": str(tf_cli_config),
            "TF_IN_AUTOMATION": "1",
            "AWS_ACCESS_KEY_ID": "offline",
            "AWS_SECRET_ACCESS_KEY": "offline",
            "AWS_REGION": "us-east-1",
        }
    )
    return env


class FlockPlanner:
    """terraform/flock copied once and initialised; plans a case with overrides."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.zips = write_lambda_zips(root / "lambda")
        self.tf = tftest.TerraformTest(str(root / "flock"), env=env)
        # tftest merges env over os.environ: take the endpoint out for the offline run.
        self.tf.env.pop("AWS_ENDPOINT_URL", None)
        self.tf.setup(cleanup_on_exit=False)
        self._plans: dict[tuple[str, str], tftest.TerraformPlanOutput] = {}

    def var_file(self, case: str, **overrides: Any) -> Path:
        values = json.loads((CASES / f"{case}.tfvars.json").read_text())
        values.setdefault("lambda", {})
        values["lambda"]["scheduler_zip"] = str(self.zips["scheduler"])
        values["lambda"]["api_zip"] = str(self.zips["api"])
        values["aws_provider"] = OFFLINE_PROVIDER
        values.update(overrides)
        suffix = "-".join(sorted(overrides)) or "plain"
        path = self.root / f"{case}-{suffix}.tfvars.json"
        path.write_text(json.dumps(values, indent=2))
        return path

    def plan(self, case: str, **overrides: Any) -> tftest.TerraformPlanOutput:
        """The plan of ``case`` with ``overrides``, made once per session (a plan of the whole
        flock takes 5-15 s on 2 cores, and several modules ask for the same one); a plan that
        fails is not kept, so each asker sees its error."""
        key = (case, json.dumps(overrides, sort_keys=True, default=str))
        if key not in self._plans:
            var_file = self.var_file(case, **overrides)
            self._plans[key] = self.tf.plan(output=True, tf_var_file=str(var_file))
        return self._plans[key]


@pytest.fixture(scope="session")
def planner(
    tf_cli_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FlockPlanner]:
    root = copy_terraform_tree(tmp_path_factory.mktemp("flock-plan"))
    yield FlockPlanner(root, offline_env(tf_cli_config))
