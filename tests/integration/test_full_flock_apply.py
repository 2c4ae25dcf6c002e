"""Apply the full flock to the emulator, check with boto3, destroy, check that nothing is left.

The full case of tests/terraform/cases with what the emulator can run: Lustre off (moto never
makes it AVAILABLE), a new VPC (the existing-VPC path is planned offline), EFS, Spot and GPU
compute environments, the emulator's overlay (``background.full_tfvars``).

The apply and the destroy are plain Terraform in a process of their own on the flock's own
emulator (tests/support/background.py): the apply starts when collection ends, the destroy when
the check is done, and ``test_full_flock_destroy_leaves_nothing`` runs last in the session and
waits for it, so neither holds up the other tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shepard.emulator import MOTO_ACCOUNT_ID, emulator_environment
from tests.support import background
from tests.support.flock_checks import assert_flock_gone, check_flock, flatten_outputs

pytestmark = [pytest.mark.integration, pytest.mark.terraform, pytest.mark.slow]


@pytest.fixture(scope="session")
def full_flock() -> Iterator[background.Flock]:
    job = background.get(background.FULL)
    try:
        yield job
    finally:
        job.stop()


def _outputs(job: background.Flock) -> dict[str, Any]:
    try:
        seconds = job.applied()
    except background.RunFailed as error:
        pytest.fail(str(error), pytrace=False)
    print(f"\nterraform apply (full flock, emulator): {seconds:.1f} s (waited {job.waited:.1f} s)")
    return flatten_outputs(background.read_json(job.folder / "outputs.json"))


def _point_at(job: background.Flock, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in emulator_environment(job.server.endpoint_url, background.REGION).items():
        monkeypatch.setenv(key, value)


def test_full_flock_applies_and_checks_out(
    full_flock: background.Flock, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = _outputs(full_flock)
    _point_at(full_flock, monkeypatch)
    try:
        check_flock(outputs, emulator=True)
        assert outputs["account_id"] == MOTO_ACCOUNT_ID
        assert outputs["efs_id"]
        # Terraform leaves null outputs out of `terraform output -json`.
        assert outputs.get("lustre_id") is None
        assert outputs["cli_profile"]["shepard_s3_bucket_to_upload_to"] == outputs["inputs_bucket"]
        assert outputs["job_environment"]["USES_EFS"] == "True"
    finally:
        full_flock.start_destroy()  # checked by the next test, at the end of the session


@pytest.mark.after_destroy
def test_full_flock_destroy_leaves_nothing(
    full_flock: background.Flock, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = _outputs(full_flock)
    try:
        seconds = full_flock.destroyed()
    except background.RunFailed as error:
        pytest.fail(str(error), pytrace=False)
    print(f"terraform destroy (full flock, emulator): {seconds:.1f} s")
    _point_at(full_flock, monkeypatch)
    assert_flock_gone(outputs)
