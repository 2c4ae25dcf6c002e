"""The applied flock's Terraform outputs, as the local flock service reads them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shepard.joblayer.contract import PHASE_INDEX


@dataclass(frozen=True)
class FlockOutputs:
    """The outputs the dispatcher and the executor need (contracts section 2)."""

    region: str
    sqs_queue_url: str
    sqs_queue_arn: str
    table_name: str
    table_status_index: str
    job_queue_arn: str | None
    job_definition_arn: str | None
    scheduler_function_name: str | None
    api_function_name: str | None
    lambda_environment: dict[str, str]
    job_environment: dict[str, str]

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> FlockOutputs:
        # outputs.json holds plain values; `terraform output -json` wraps each in {"value": ...}.
        values = {
            key: (item["value"] if isinstance(item, dict) and "value" in item else item)
            for key, item in raw.items()
        }
        queue_url = str(values["sqs_queue_url"])
        region = str(values.get("region") or "us-east-1")
        arn = values.get("sqs_queue_arn") or _queue_arn(queue_url, region)
        return cls(
            region=region,
            sqs_queue_url=queue_url,
            sqs_queue_arn=str(arn),
            table_name=str(values["table_name"]),
            table_status_index=str(values.get("table_status_index") or PHASE_INDEX),
            job_queue_arn=_opt(values.get("job_queue_arn")),
            job_definition_arn=_opt(values.get("job_definition_arn")),
            scheduler_function_name=_opt(values.get("scheduler_function_name")),
            api_function_name=_opt(values.get("api_function_name")),
            lambda_environment=_str_map(values.get("lambda_environment")),
            job_environment=_str_map(values.get("job_environment")),
        )


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _queue_arn(queue_url: str, region: str) -> str:
    # http://host/<account>/<name>
    parts = queue_url.rstrip("/").split("/")
    return f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}"


def read_outputs(path: Path) -> FlockOutputs | None:
    """The outputs, or None while the flock is not applied (no file, or not the keys yet)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not isinstance(raw, dict):
        return None
    try:
        return FlockOutputs.from_mapping(raw)
    except KeyError:
        return None
