"""explain(): what `why` says, from a record and what Batch answered (plain data, no AWS)."""

from __future__ import annotations

from typing import Any

from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.store import JobRecord
from shepard.joblayer.why import BatchFacts, BatchView, explain

QUEUE_ARN = "arn:aws:batch:us-east-1:123456789012:job-queue/flock-queue"
CE_ARN = "arn:aws:batch:us-east-1:123456789012:compute-environment/flock-spot-abc"


def _environment(**overrides: Any) -> dict[str, Any]:
    resources = {
        "type": "SPOT",
        "maxvCpus": 16,
        "desiredvCpus": 0,
        "instanceTypes": ["optimal"],
        **overrides.pop("resources", {}),
    }
    return {
        "computeEnvironmentName": "flock-spot-abc",
        "computeEnvironmentArn": CE_ARN,
        "state": "ENABLED",
        "status": "VALID",
        "computeResources": resources,
        **overrides,
    }


def _facts(*, queue_state: str = "ENABLED", **environment: Any) -> BatchFacts:
    return BatchFacts(
        job={
            "jobId": "b-1",
            "status": "RUNNABLE",
            "jobQueue": QUEUE_ARN,
            "container": {
                "resourceRequirements": [
                    {"type": "VCPU", "value": "4"},
                    {"type": "MEMORY", "value": "7000"},
                ]
            },
        },
        queue={
            "jobQueueName": "flock-queue",
            "state": queue_state,
            "status": "VALID",
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": CE_ARN}],
        },
        environments=[_environment(**environment)],
    )


WAITING = JobRecord("job-1", batch_job_id="b-1")


def test_a_job_that_fits_an_idle_environment_waits_for_an_instance() -> None:
    diagnosis = explain(WAITING, _facts())
    assert diagnosis.state == "waiting"
    assert diagnosis.sentences[0] == "AWS Batch has it as RUNNABLE."
    assert "It asks 4 vCPUs and 7000 MiB of memory (from its Batch job)." in diagnosis.sentences
    assert diagnosis.sentences[-1].startswith("Nothing stops it")
    assert "flock-spot-abc (c4.xlarge)" in diagnosis.sentences[-1]


def test_the_record_s_request_wins_over_the_job_definition() -> None:
    record = JobRecord("job-1", batch_job_id="b-1", memory_mib=2_000_000)
    diagnosis = explain(record, _facts())
    assert (diagnosis.vcpus, diagnosis.memory_mib, diagnosis.asks_from) == (4, 2_000_000, "record")
    [environment] = diagnosis.environments
    assert environment.fit is not None and not environment.fit.fits
    assert any("No compute environment can ever place it" in s for s in diagnosis.sentences)


def test_a_full_environment_says_how_many_vcpus_are_in_use() -> None:
    diagnosis = explain(WAITING, _facts(resources={"desiredvCpus": 14}))
    assert (
        "Compute environment flock-spot-abc is full: 14 of its 16 vCPUs (max_cpu) are in use, "
        "and this job needs 4 more. It starts when others finish; raise batch.max_cpu to run "
        "more at once."
    ) in diagnosis.sentences


def test_disabled_queue_and_invalid_environment_are_named_with_batch_s_reason() -> None:
    diagnosis = explain(
        WAITING,
        _facts(
            queue_state="DISABLED",
            status="INVALID",
            statusReason="CLIENT_ERROR - The subnet does not exist",
        ),
    )
    text = " ".join(diagnosis.sentences)
    assert "The job queue flock-queue is DISABLED: nothing in it starts." in text
    assert (
        "Compute environment flock-spot-abc is INVALID: CLIENT_ERROR - The subnet does not exist."
    ) in text
    assert "Nothing stops it" not in text


def test_a_failed_job_gives_reason_exit_code_attempts_and_log() -> None:
    record = JobRecord(
        "job-2",
        status=Status.DONE,
        phase=Phase.FINISHED,
        result=Result.FAILED,
        exit_code=137,
        reason="Essential container in task exited",
        attempts=(
            {
                "number": 1,
                "cause": "spot reclaim",
                "lifecycle": "spot",
                "instance_type": "m5.large",
            },
            {"number": 2, "exit_code": 137, "queue": "flock-on-demand"},
        ),
    )
    facts = BatchFacts(
        job={"container": {"reason": "OutOfMemoryError: Container killed due to memory usage"}},
        log_lines=["loading", "allocating 9 GiB"],
        log_source="CloudWatch Logs /aws/batch/flock s",
    )
    diagnosis = explain(record, facts)
    assert diagnosis.sentences == (
        "It failed: Essential container in task exited.",
        "Exit code 137.",
        "The container: OutOfMemoryError: Container killed due to memory usage.",
        "It ran out of memory: raise batch.desired_ram in flock.yaml.",
        "It was tried 2 times.",
        "Attempt 1: spot reclaim; spot m5.large.",
        "Attempt 2: exit code 137; queue flock-on-demand.",
        "The last 2 lines of its log (CloudWatch Logs /aws/batch/flock s):",
    )
    assert diagnosis.to_json()["log_lines"] == ["loading", "allocating 9 GiB"]


class _Calls:
    """Batch and Logs clients that answer from tables and count the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def call(**params: Any) -> dict[str, Any]:
            self.calls.append((name, params))
            facts = _facts()
            answers: dict[str, dict[str, Any]] = {
                "describe_jobs": {"jobs": [{**(facts.job or {}), "jobDefinition": "def:1"}]},
                "describe_job_definitions": {"jobDefinitions": []},
                "describe_job_queues": {"jobQueues": [facts.queue]},
                "describe_compute_environments": {"computeEnvironments": facts.environments},
                "get_log_events": {"events": [{"message": "last\n"}]},
            }
            return answers[name]

        return call


def test_gather_makes_at_most_five_calls_and_reads_ten_log_lines() -> None:
    client = _Calls()
    BatchView(client, client).gather(WAITING, read_log=False)
    assert [name for name, _ in client.calls] == [
        "describe_jobs",
        "describe_job_definitions",
        "describe_job_queues",
        "describe_compute_environments",
    ]
    failed = JobRecord("job-3", phase=Phase.FINISHED, batch_job_id="b-1", log_stream="s")
    client.calls.clear()
    facts = BatchView(client, client).gather(failed, read_log=True)
    assert [name for name, _ in client.calls] == ["describe_jobs", "get_log_events"]
    assert client.calls[-1][1]["limit"] == 10 and facts.log_lines == ["last"]
