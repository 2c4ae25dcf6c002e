"""The payload's environment: the user's variables, then every variable the seed documents,
then what the payload needs to call AWS as the job role."""

from __future__ import annotations

from collections.abc import Mapping

from shepard.joblayer.records import RESERVED_VARIABLES

from .workspace import Workspace

# The ECS agent's credentials endpoint for the job role (worker/README.md, "The payload's AWS
# credentials"). Copied from the worker's environment, where the agent put them; a user's
# variable of the same name is dropped, so that no job can point the payload's SDK at another
# credentials server while it looks like the job role.
JOB_ROLE_CREDENTIAL_VARIABLES = (
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "ECS_CONTAINER_METADATA_URI_V4",
)
# The region the job runs in: the worker's, unless the job's variables choose one.
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


def job_role_environment(worker_environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of the worker's own environment that the payload gets: the job role's
    credentials endpoint, the region and the container metadata endpoint, when present.

    Nothing else of the worker's environment goes through: not its static keys
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), its profile or its
    endpoints, which would make the payload someone other than the job role.
    """
    names = (*JOB_ROLE_CREDENTIAL_VARIABLES, *REGION_VARIABLES)
    return {name: worker_environ[name] for name in names if worker_environ.get(name, "").strip()}


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
    worker_environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The payload's variables; the seed's reserved names always win over the user's.

    ``path`` is None for the Docker runner: the payload image keeps its own PATH.
    ``worker_environ`` is the worker's own environment, read only for
    :func:`job_role_environment`.
    """
    # The job layer rejects reserved names in any case; dropping them here is the last defence,
    # so that a reserved name in another case (``uuid``) cannot shadow the real one either.
    dropped = RESERVED_VARIABLES | set(JOB_ROLE_CREDENTIAL_VARIABLES)
    env = {k: str(v) for k, v in variables.items() if k.upper() not in dropped}
    for name, value in job_role_environment(worker_environ or {}).items():
        env.setdefault(name, value)  # a job's own AWS_REGION stays
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
