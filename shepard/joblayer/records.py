"""Names of the job record: status strings, phases, results, reserved variables.

These are the strings existing Shepard users' scripts read; see docs/contracts.md, section 5.
"""

from __future__ import annotations

from enum import StrEnum

from shepard.joblayer import contract


class Status(StrEnum):
    """The seed's ``JOB_STATUS`` strings, exactly as the original wrote them."""

    NOT_YET_INITIATED = "not_yet_initiated"
    IN_PROGRESS = "in_progress"
    CALLING_PAYLOAD_CODE = "calling_payload_code"
    COMPLETE_PUSHING_TO_S3 = "job_complete_pushing_to_s3"
    COMPLETE_CLEANING_UP = "job_complete_cleaning_up_workspace"
    FAILED_PUSHING_LOGS = "job failed; pushing logs to s3"
    FAILED_CLEANING_UP = "job failed; cleaning up workspace"
    DONE = "<done>"


class Phase(StrEnum):
    """Where a job is in its life: the hash key of the table's ``phase-index``."""

    QUEUED = contract.QUEUED
    RUNNING = contract.RUNNING
    FINISHED = contract.FINISHED


class Result(StrEnum):
    """How a finished job ended: what the original could not tell apart from ``<done>``."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"  # shepard-tf cancel, or the queue's time limit (REASON says which)


STATUS_INDEX = contract.PHASE_INDEX  # the name callers of records knew it by

# The seed's reserved environment variables ("Reserved Environment Variables"). A job whose
# variables name one of these, in any letter case, is rejected.
RESERVED_VARIABLES: frozenset[str] = frozenset(
    {
        "UUID",
        "START_TIME",
        "END_TIME",
        "JOB_STATUS",
        "EFS_INPUT_NAME",
        "EFS_OUTPUT_NAME",
        "LUSTRE_INPUT_NAME",
        "LUSTRE_OUTPUT_NAME",
        "ROOT_INPUT_NAME",
        "ROOT_OUTPUT_NAME",
        "INPUTS_BUCKET",
        "OUTPUTS_BUCKET",
        "ERROR_BUCKET",
        "INPUT_ZIP_NAME",
        "PATH",
        "HOSTNAME",
        "USES_EFS",
        "USES_LUSTRE",
        "LUSTRE_READ_ONLY_PATH",
        "EFS_READ_ONLY_PATH",
        "ULIMIT_FILENO",
        "IS_INVOKED",
    }
)

# Special but not reserved: TAG prefixes output names; QUICK_DEPLOY_DIRECTORY runs run.sh from the
# quick-deploy bucket. Both are matched in any letter case.
TAG_VARIABLE = "TAG"
QUICK_DEPLOY_VARIABLE = "QUICK_DEPLOY_DIRECTORY"

# Output zip suffixes by output folder (seed "Output Name Formats").
OUTPUT_SUFFIXES = {"root": "_root", "efs": "_efs", "lustre": "_lustre"}


def result_zip_name(job_id: str, start_time: str, location: str, tag: str | None) -> str:
    """The seed's output name: ``[TAG_]result@<UUID>_<START_TIME>_<root|efs|lustre>.zip``, the
    TAG as ``tags.tag_in_name`` makes it (an ordinary TAG as it is)."""
    from shepard.joblayer.tags import tag_in_name

    name = tag_in_name(tag) if tag else ""
    prefix = f"{name}_result@" if name else "result@"
    return f"{prefix}{job_id}_{start_time}{OUTPUT_SUFFIXES[location]}.zip"
