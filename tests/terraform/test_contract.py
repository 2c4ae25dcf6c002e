"""What Terraform gives the code is what the code reads: an offline plan against the contract.

``shepard/joblayer/contract.py`` names the Lambdas' environment, the job definition's
environment and the root module's outputs. A name changed (or added) on one side only fails
here, at plan time, not in a deployed Lambda or a job.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import tftest
from shepard_worker.settings import REQUIRED as WORKER_REQUIRED

from shepard.joblayer import contract
from shepard.joblayer.settings import FlockSettings
from tests.terraform.conftest import FlockPlanner

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
JOB_DEFINITION = "module.batch.aws_batch_job_definition.this"


@pytest.fixture(scope="module")
def plans(planner: FlockPlanner) -> dict[str, tftest.TerraformPlanOutput]:
    return {case: planner.plan(case) for case in ("minimal", "full")}


def _created(plan: tftest.TerraformPlanOutput, address: str) -> tuple[Any, Any]:
    change = plan.resource_changes[address]["change"]
    assert change["actions"] == ["create"], f"{address}: {change['actions']}"
    return change["after"], change["after_unknown"]


def _lambda_environment(plan: tftest.TerraformPlanOutput, address: str) -> set[str] | None:
    """The names of a function's environment; None while the whole map is unknown (it holds
    ARNs known only after apply)."""
    after, unknown = _created(plan, address)
    [known] = after["environment"]
    unknown_vars = (unknown.get("environment") or [{}])[0].get("variables")
    if "variables" not in known and unknown_vars is True:
        return None
    return set(known.get("variables") or {}) | set(unknown_vars or {})


def _output_keys(plan: tftest.TerraformPlanOutput, name: str) -> set[str]:
    change = plan.output_changes[name]
    return set(change["after"] or {}) | set(change["after_unknown"] or {})


def _passes(plan: tftest.TerraformPlanOutput, module: str, argument: str) -> set[str]:
    """What the root module passes to a module's argument, as Terraform records it."""
    call = plan.configuration["root_module"]["module_calls"][module]
    return set(call["expressions"][argument].get("references", []))


def _job_environment(plan: tftest.TerraformPlanOutput) -> set[str] | None:
    """The names in the job definition's container environment; None while the plan does not
    know its container properties (they hold ARNs known only after apply)."""
    after, unknown = _created(plan, JOB_DEFINITION)
    if unknown.get("container_properties") is True:
        return None
    properties = json.loads(after["container_properties"])
    return {item["name"] for item in properties["environment"]}


@pytest.mark.parametrize("case", ["minimal", "full"])
def test_both_lambdas_get_exactly_the_lambda_environment(
    plans: dict[str, tftest.TerraformPlanOutput], case: str
) -> None:
    plan = plans[case]
    # The one map both Lambdas get, as the plan has it (its ARNs are unknown until apply) ...
    assert _output_keys(plan, "lambda_environment") == set(contract.LAMBDA_ENVIRONMENT)
    for module in ("scheduler", "api", "events"):
        assert "local.lambda_environment" in _passes(plan, module, "environment"), module
    # ... and each function's environment, where the plan knows it.
    functions = [
        address
        for address, change in plan.resource_changes.items()
        if change["type"] == "aws_lambda_function"
    ]
    assert [address.split(".")[1] for address in sorted(functions)] == [
        "api",
        "events",
        "scheduler",
    ]
    for address in functions:
        names = _lambda_environment(plan, address)
        assert names is None or names == set(contract.LAMBDA_ENVIRONMENT), address


def test_the_lambdas_read_every_name_of_their_environment() -> None:
    settings = FlockSettings.from_env({name: "1" for name in contract.LAMBDA_ENVIRONMENT})
    assert set(settings.to_env()) == set(contract.LAMBDA_ENVIRONMENT)


@pytest.mark.parametrize(
    ("case", "optional"),
    [
        ("minimal", set()),
        ("full", {contract.EFS_ROOT, contract.LUSTRE_ROOT, contract.CHECKPOINT_INTERVAL_MINUTES}),
    ],
)
def test_job_definition_environment_is_what_the_worker_reads(
    plans: dict[str, tftest.TerraformPlanOutput], case: str, optional: set[str]
) -> None:
    plan = plans[case]
    expected = set(contract.JOB_ENVIRONMENT_REQUIRED) | optional
    # The map the batch module turns into the job definition's environment ...
    assert _output_keys(plan, "job_environment") == expected
    assert "local.job_environment" in _passes(plan, "batch", "job_environment")
    batch = plan.configuration["root_module"]["module_calls"]["batch"]["module"]
    [definition] = [
        r for r in batch["resources"] if r["address"] == "aws_batch_job_definition.this"
    ]
    references = definition["expressions"]["container_properties"].get("references", [])
    assert "var.job_environment" in references
    # ... and the job definition itself, where the plan knows it.
    names = _job_environment(plan)
    assert names is None or names == expected
    values = plan.output_changes["job_environment"]["after"]
    uses = {contract.EFS_ROOT: contract.USES_EFS, contract.LUSTRE_ROOT: contract.USES_LUSTRE}
    for root, flag in uses.items():
        assert values[flag] == ("True" if root in optional else "False")
    # What the worker cannot do without comes from the job definition, or from SubmitJob.
    assert set(WORKER_REQUIRED) <= expected | {contract.JOB_ID}


def test_outputs_tf_declares_exactly_the_contract_outputs() -> None:
    text = (ROOT / "terraform" / "flock" / "outputs.tf").read_text(encoding="utf-8")
    declared = re.findall(r'^output\s+"([^"]+)"', text, flags=re.MULTILINE)
    assert sorted(declared) == sorted(contract.OUTPUTS)
    assert len(declared) == len(set(declared))


def test_the_plan_has_every_contract_output(plans: dict[str, tftest.TerraformPlanOutput]) -> None:
    for plan in plans.values():
        assert set(plan.output_changes) == set(contract.OUTPUTS)
        assert plan.output_changes["table_status_index"]["after"] == contract.PHASE_INDEX
