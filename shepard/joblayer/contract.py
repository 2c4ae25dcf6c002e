"""The names shared by Terraform, the Lambdas, the worker, the CLI and the local flock.

One place for each name that crosses a boundary (docs/contracts.md, sections 2 to 5):
the Lambdas' environment, the job definition's environment, the root module's outputs, the job
table's phase index and the actions the Lambdas call on the table. tests/terraform/
test_contract.py checks an offline plan of terraform/flock against these tuples, so a name
changed on one side fails a test instead of a deploy.
"""

from __future__ import annotations

# -- the job table ----------------------------------------------------------------------------

# The GSI whose hash key is PHASE; a job is in one of these phases (records.Phase).
PHASE_INDEX = "phase-index"
QUEUED = "queued"
RUNNING = "running"
FINISHED = "finished"
PHASES: tuple[str, ...] = (QUEUED, RUNNING, FINISHED)
# The GSI whose hash key is BATCH_ID (range CREATED_AT): the jobs of one submission
# (`query --batch`, `wait --batch`, `cancel --batch`).
BATCH_INDEX = "batch-index"
# The S3 user metadata (x-amz-meta-shepard-batch-id) `shepard-tf batch` puts on each zip it
# uploads: the scheduler stores it as the job's BATCH_ID.
BATCH_ID_METADATA = "shepard-batch-id"

# The DynamoDB actions the Lambdas' JobStore calls (create, put_many, delete_unsubmitted, get,
# set_batch_job_id, finish): the Lambda role must allow exactly these on the table.
TABLE_ACTIONS_LAMBDA: tuple[str, ...] = (
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
)

# -- the Lambdas' environment (section 3): FlockSettings field -> variable ----------------------

LAMBDA_ENVIRONMENT_FIELDS: dict[str, str] = {
    "flock": "SHEPARD_FLOCK",
    "table_name": "SHEPARD_TABLE_NAME",
    "job_queue": "SHEPARD_JOB_QUEUE",
    "job_definition": "SHEPARD_JOB_DEFINITION",
    "inputs_bucket": "SHEPARD_INPUTS_BUCKET",
    "outputs_bucket": "SHEPARD_OUTPUTS_BUCKET",
    "errors_bucket": "SHEPARD_ERRORS_BUCKET",
    "quick_deploy_bucket": "SHEPARD_QUICK_DEPLOY_BUCKET",
    "days_to_keep_failed_launch_indexes": "SHEPARD_DAYS_TO_KEEP_FAILED_LAUNCH_INDEXES",
    "days_to_keep_finished_jobs": "SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS",
    "job_timeout_seconds": "SHEPARD_JOB_TIMEOUT_SECONDS",
    # JSON: every job's vcpus/memory_mib/gpus and each compute environment's instance types,
    # for the fit check at submit (shepard/joblayer/fit.py); may be absent (older flocks).
    "job_resources": "SHEPARD_JOB_RESOURCES",
    # Retries after a failure (shepard/joblayer/retry.py): the ladder's on-demand queue ("" when
    # the flock has none), reclaims before it (0: no ladder), the out-of-memory factor (0: no
    # such retry) and ceiling, and the job definition's memory (what a job has unless raised).
    "on_demand_job_queue": "SHEPARD_ON_DEMAND_JOB_QUEUE",
    "spot_attempts": "SHEPARD_SPOT_ATTEMPTS",
    "oom_factor": "SHEPARD_OOM_FACTOR",
    "oom_max_memory_mib": "SHEPARD_OOM_MAX_MEMORY_MIB",
    "job_memory_mib": "SHEPARD_JOB_MEMORY_MIB",
}
LAMBDA_ENVIRONMENT: tuple[str, ...] = tuple(LAMBDA_ENVIRONMENT_FIELDS.values())

# -- the job's (worker's) environment (section 4) ---------------------------------------------

INPUTS_BUCKET = "INPUTS_BUCKET"
OUTPUTS_BUCKET = "OUTPUTS_BUCKET"
ERROR_BUCKET = "ERROR_BUCKET"
USES_EFS = "USES_EFS"
USES_LUSTRE = "USES_LUSTRE"
ULIMIT_FILENO = "ULIMIT_FILENO"
FLOCK = "SHEPARD_FLOCK"
TABLE_NAME = "SHEPARD_TABLE_NAME"
SECRET_NAME = "SHEPARD_SECRET_NAME"  # noqa: S105 (the variable's name, not a secret)
QUICK_DEPLOY_BUCKET = "SHEPARD_QUICK_DEPLOY_BUCKET"
PAYLOAD_IMAGE = "SHEPARD_PAYLOAD_IMAGE"
ALLOW_DOCKER_DAEMON = "SHEPARD_ALLOW_DOCKER_DAEMON"
WORK_ROOT = "SHEPARD_WORK_ROOT"
DAYS_TO_KEEP_FINISHED_JOBS = "SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS"
EFS_ROOT = "SHEPARD_EFS_ROOT"
LUSTRE_ROOT = "SHEPARD_LUSTRE_ROOT"

# What the job definition gives every job.
# The job definition's retry strategy, for the worker to know whether an interruption is retried.
RETRY_ATTEMPTS = "SHEPARD_RETRY_ATTEMPTS"
RETRY_ON_HOST_RECLAIM = "SHEPARD_RETRY_ON_HOST_RECLAIM"
CHECKPOINT_INTERVAL_MINUTES = "SHEPARD_CHECKPOINT_INTERVAL_MINUTES"

JOB_ENVIRONMENT_REQUIRED: tuple[str, ...] = (
    INPUTS_BUCKET,
    OUTPUTS_BUCKET,
    ERROR_BUCKET,
    USES_EFS,
    USES_LUSTRE,
    ULIMIT_FILENO,
    FLOCK,
    TABLE_NAME,
    SECRET_NAME,
    QUICK_DEPLOY_BUCKET,
    PAYLOAD_IMAGE,
    ALLOW_DOCKER_DAEMON,
    WORK_ROOT,
    DAYS_TO_KEEP_FINISHED_JOBS,
    RETRY_ATTEMPTS,
    RETRY_ON_HOST_RECLAIM,
)
# What it gives only when the flock has that file system (USES_EFS / USES_LUSTRE "True"), and
# the checkpoint interval only when flock.yaml sets one.
JOB_ENVIRONMENT_OPTIONAL: tuple[str, ...] = (EFS_ROOT, LUSTRE_ROOT, CHECKPOINT_INTERVAL_MINUTES)

# Set per job by SubmitJob's container overrides (the scheduler and the API).
JOB_ID = "SHEPARD_JOB_ID"
# Set by AWS Batch in every container.
BATCH_JOB_ID = "AWS_BATCH_JOB_ID"
BATCH_JOB_ATTEMPT = "AWS_BATCH_JOB_ATTEMPT"
BATCH_JOB_ARRAY_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
BATCH_QUEUE_NAME = "AWS_BATCH_JQ_NAME"
# Not in the job definition: how the local flock runs the worker on this machine.
RUNNER = "SHEPARD_RUNNER"
PAYLOAD_COMMAND = "SHEPARD_PAYLOAD_COMMAND"
STOP_GRACE_SECONDS = "SHEPARD_STOP_GRACE_SECONDS"
# "False" only from the local flock's executor (docker mode): its EFS folder is not an nfs4 mount.
CHECK_MOUNTS = "SHEPARD_CHECK_MOUNTS"
WORKER_LOCAL: tuple[str, ...] = (RUNNER, PAYLOAD_COMMAND, STOP_GRACE_SECONDS, CHECK_MOUNTS)

# -- the root module's outputs (section 2) ----------------------------------------------------

OUTPUTS: tuple[str, ...] = (
    "flock_name",
    "region",
    "account_id",
    "inputs_bucket",
    "outputs_bucket",
    "errors_bucket",
    "quick_deploy_bucket",
    "table_name",
    "table_status_index",
    "secret_name",
    "secret_arn",
    "ecr_repository_name",
    "ecr_repository_url",
    "job_queue_name",
    "job_queue_arn",
    "job_definition_name",
    "job_definition_arn",
    "sqs_queue_url",
    "sqs_queue_arn",
    "dead_letter_queue_url",
    "scheduler_function_name",
    "api_function_name",
    "api_endpoint_url",
    "efs_id",
    "lustre_id",
    "vpc_id",
    "subnet_ids",
    "security_group_id",
    "lambda_environment",
    "job_environment",
    "cli_profile",
)
