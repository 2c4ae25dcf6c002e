"""The flock resources the job layer touches, made with boto3 against the emulator.

For tests of every part (joblayer, worker, CLI): the job table with the contract's key schema and
``phase-index`` GSI, the four buckets, and a Batch queue and job definition. Terraform makes the
real ones; this is the same shape in a second, with no Terraform run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from shepard.joblayer import clients
from shepard.joblayer.contract import BATCH_INDEX, PHASE_INDEX
from shepard.joblayer.settings import FlockSettings


def create_job_table(client: Any, table_name: str) -> None:
    """The job table of contracts section 5 (on-demand, GSI ``phase-index`` projecting ALL)."""
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "UUID", "AttributeType": "S"},
            {"AttributeName": "PHASE", "AttributeType": "S"},
            {"AttributeName": "CREATED_AT", "AttributeType": "S"},
            {"AttributeName": "BATCH_ID", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "UUID", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": PHASE_INDEX,
                "KeySchema": [
                    {"AttributeName": "PHASE", "KeyType": "HASH"},
                    {"AttributeName": "CREATED_AT", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": BATCH_INDEX,
                "KeySchema": [
                    {"AttributeName": "BATCH_ID", "KeyType": "HASH"},
                    {"AttributeName": "CREATED_AT", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )


def _create_queue(name: str, compute_environment: str) -> str:
    queue = clients.client("batch").create_job_queue(
        jobQueueName=name,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": compute_environment}],
    )
    return str(queue["jobQueueArn"])


def _create_batch(name: str) -> tuple[str, str, str]:
    iam = clients.client("iam")
    batch = clients.client("batch")
    trust = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
        '{"Service":"batch.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
    )
    role = iam.create_role(RoleName=f"{name}-batch-service", AssumeRolePolicyDocument=trust)
    environment = batch.create_compute_environment(
        computeEnvironmentName=f"{name}-ce",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role["Role"]["Arn"],
    )
    queue = _create_queue(f"{name}-queue", environment["computeEnvironmentArn"])
    definition = batch.register_job_definition(
        jobDefinitionName=f"{name}-job",
        type="container",
        containerProperties={
            "image": "worker:latest",
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "512"},
            ],
        },
    )
    return queue, str(definition["jobDefinitionArn"]), str(environment["computeEnvironmentArn"])


@dataclass(frozen=True)
class FlockFixture:
    settings: FlockSettings
    compute_environment: str = ""

    @property
    def env(self) -> dict[str, str]:
        return self.settings.to_env()

    def fresh(self, suffix: str) -> FlockFixture:
        """The same flock with a new empty job table and job queue (cheaper than a reset)."""
        table = f"{self.settings.table_name}-{suffix}"
        create_job_table(clients.client("dynamodb"), table)
        queue = self.settings.job_queue
        if self.compute_environment:
            queue = _create_queue(f"{self.settings.flock}-queue-{suffix}", self.compute_environment)
        return replace(self, settings=replace(self.settings, table_name=table, job_queue=queue))


def make_test_flock(name: str = "testflock", *, batch: bool = True) -> FlockFixture:
    """Make a flock's job-layer resources in the emulator boto3 points at; return its settings."""
    s3 = clients.client("s3")
    buckets = {role: f"{name}-{role}" for role in ("inputs", "outputs", "errors", "quick-deploy")}
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)
    table = f"{name}-jobs"
    create_job_table(clients.client("dynamodb"), table)
    queue, definition, environment = _create_batch(name) if batch else ("", "", "")
    return FlockFixture(
        FlockSettings(
            flock=name,
            table_name=table,
            job_queue=queue or f"arn:aws:batch:us-east-1:123456789012:job-queue/{name}-queue",
            job_definition=definition
            or f"arn:aws:batch:us-east-1:123456789012:job-definition/{name}-job:1",
            inputs_bucket=buckets["inputs"],
            outputs_bucket=buckets["outputs"],
            errors_bucket=buckets["errors"],
            quick_deploy_bucket=buckets["quick-deploy"],
        ),
        environment,
    )
