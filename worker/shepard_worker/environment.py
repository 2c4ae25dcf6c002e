"""The payload's environment: the user's variables, then every variable the seed documents."""

from __future__ import annotations

from collections.abc import Mapping

from shepard.joblayer.records import RESERVED_VARIABLES

from .workspace import Workspace


def payload_environment(
    *,
    variables: Mapping[str, str],
    job_id: str,
    start_time: str,
    job_status: str,
    workspace: Workspace,
    inputs_bucket: str,
    outputs_bucket: str,
    errors_bucket: str,
    input_zip_name: str,
    is_invoked: str,
    hostname: str,
    ulimit_nofile: int,
    path: str | None,
) -> dict[str, str]:
    """The payload's variables; the seed's reserved names always win over the user's.

    ``path`` is None for the Docker runner: the payload image keeps its own PATH.
    """
    # The job layer rejects reserved names in any case; dropping them here is the last defence,
    # so that a reserved name in another case (``uuid``) cannot shadow the real one either.
    env = {k: str(v) for k, v in variables.items() if k.upper() not in RESERVED_VARIABLES}
    root = workspace.root
    efs = workspace.get("efs")
    lustre = workspace.get("lustre")
    env.update(
        {
            "UUID": job_id,
            "START_TIME": start_time,
            "JOB_STATUS": job_status,
            "ROOT_INPUT_NAME": str(root.input),
            "ROOT_OUTPUT_NAME": str(root.output),
            "INPUTS_BUCKET": inputs_bucket,
            "OUTPUTS_BUCKET": outputs_bucket,
            "ERROR_BUCKET": errors_bucket,
            "INPUT_ZIP_NAME": input_zip_name,
            "HOSTNAME": hostname,
            "USES_EFS": str(efs is not None),
            "USES_LUSTRE": str(lustre is not None),
            "ULIMIT_FILENO": str(ulimit_nofile),
            "IS_INVOKED": is_invoked,
        }
    )
    if efs is not None:
        env["EFS_INPUT_NAME"] = str(efs.input)
        env["EFS_OUTPUT_NAME"] = str(efs.output)
        env["EFS_READ_ONLY_PATH"] = str(workspace.read_only["efs"])
    if lustre is not None:
        env["LUSTRE_INPUT_NAME"] = str(lustre.input)
        env["LUSTRE_OUTPUT_NAME"] = str(lustre.output)
        env["LUSTRE_READ_ONLY_PATH"] = str(workspace.read_only["lustre"])
    if path is not None:
        env["PATH"] = path
    return env
