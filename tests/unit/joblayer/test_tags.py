"""The TAG rule: what the job layer accepts, what the worker names, what `retrieve` looks for."""

from __future__ import annotations

import pytest
from shepard_worker.results import safe_tag

from shepard.commands.results import result_prefix
from shepard.errors import BadInput
from shepard.joblayer.records import result_zip_name
from shepard.joblayer.tags import MAX_TAG_LENGTH, check_tag, tag_in_name
from shepard.joblayer.variables import JobRejected, validate_variables

JOB = "0123456789abcdef0123456789abcdef"
START = "20261129T061500Z"
LONG = "r" * 60 + "-" + "u" * 59  # 120 characters: past the worker's old 100, under 128


def worker_name(tag: str | None, location: str = "root") -> str:
    """The key the worker uploads a result as (shepard_worker.results.upload_results)."""
    return result_zip_name(JOB, START, location, safe_tag(tag))


@pytest.mark.parametrize("tag", ["test_file", "run-7", "a.b", "x" * 100, "_under"])
def test_ordinary_tags_keep_the_seeds_names(tag: str) -> None:
    assert check_tag(tag) is None and tag_in_name(tag) == tag
    assert worker_name(tag) == f"{tag}_result@{JOB}_{START}_root.zip"
    assert worker_name(None, "efs") == f"result@{JOB}_{START}_efs.zip"


@pytest.mark.parametrize(
    ("tag", "in_name"),
    [
        ("my run ü", "my_run_"),
        (LONG, LONG),
        ("t" * MAX_TAG_LENGTH, "t" * MAX_TAG_LENGTH),
        ("run 1; rm -rf ~", "run_1_rm_-rf_"),
        (".hidden", "hidden"),
    ],
)
def test_what_the_worker_names_is_what_retrieve_finds(tag: str, in_name: str) -> None:
    validate_variables({"TAG": tag})  # accepted
    name = worker_name(tag)
    assert name == f"{in_name}_result@{JOB}_{START}_root.zip"
    assert name.startswith(result_prefix(tag))
    assert tag_in_name(tag_in_name(tag)) == tag_in_name(tag)


def test_my_run_u_is_not_found_by_my_run_and_the_other_way() -> None:
    """The issue's case: `retrieve --tag "my run ü"` finds `my_run__result@...` only."""
    assert worker_name("my run ü").startswith("my_run__result@")
    assert not worker_name("my run").startswith(result_prefix("my run ü"))
    assert not worker_name("my run ü").startswith(result_prefix("my run"))


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        ("", "empty"),
        ("t" * (MAX_TAG_LENGTH + 1), "129 characters long"),
        ("a/b", "slash"),
        ("a\\b", "backslash"),
        ("x\ny", "control character"),
        ("..", "only dots"),
        (".", "only dots"),
    ],
)
def test_tags_no_name_can_hold_are_refused_everywhere(tag: str, reason: str) -> None:
    refused = check_tag(tag)
    assert refused is not None and reason in refused
    with pytest.raises(JobRejected, match=f'variable "TAG".*{reason}'):
        validate_variables({"TAG": tag})
    if tag:
        with pytest.raises(BadInput, match="no job can have that TAG"):
            result_prefix(tag)
