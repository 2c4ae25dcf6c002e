"""The IAM evaluator and checker on small policies: each case can fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.iam_actions import authorizations, known_action
from tests.support.iam_check import (
    FlockPolicies,
    Role,
    check,
    conclude,
    doc_resource,
    documented_policies,
    render_doc,
)
from tests.support.iam_policy import Decision, Request, UnsupportedCondition, evaluate
from tests.support.iam_record import Call, part_of_stack

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/f-scheduler"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/f-jobs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def req(action: str, resource: str = TABLE, **context: str) -> Request:
    return Request(action, resource, ROLE, {"aws:SecureTransport": "true", **context})


def test_allow_needs_a_matching_statement() -> None:
    granted = policy(allow(["dynamodb:PutItem", "dynamodb:GetItem"], TABLE))
    assert evaluate(req("dynamodb:PutItem"), [granted]).allowed
    outcome = evaluate(req("dynamodb:BatchWriteItem"), [granted])
    assert outcome.decision is Decision.IMPLICIT_DENY
    other_table = TABLE.replace("f-jobs", "g-jobs")
    assert not evaluate(req("dynamodb:PutItem", other_table), [granted]).allowed


def test_explicit_deny_wins_over_any_allow() -> None:
    policies = [policy(allow("dynamodb:*", "*")), policy(deny("dynamodb:DeleteItem", TABLE))]
    outcome = evaluate(req("dynamodb:DeleteItem"), policies)
    assert outcome.decision is Decision.EXPLICIT_DENY
    assert evaluate(req("dynamodb:PutItem"), policies).allowed


def test_wildcards_in_action_and_resource() -> None:
    granted = policy(allow("s3:Get*", "arn:aws:s3:::f-inputs-*/*"))
    assert evaluate(req("s3:GetObject", "arn:aws:s3:::f-inputs-123/a/b.zip"), [granted]).allowed
    assert evaluate(req("S3:getobjectversion", "arn:aws:s3:::f-inputs-1/k"), [granted]).allowed
    assert not evaluate(req("s3:PutObject", "arn:aws:s3:::f-inputs-1/k"), [granted]).allowed
    # resource matching is case-sensitive, and `?` is exactly one character
    assert not evaluate(req("s3:GetObject", "arn:aws:s3:::F-INPUTS-1/k"), [granted]).allowed
    one = policy(allow("s3:GetObject", "arn:aws:s3:::b/?.zip"))
    assert evaluate(req("s3:GetObject", "arn:aws:s3:::b/a.zip"), [one]).allowed
    assert not evaluate(req("s3:GetObject", "arn:aws:s3:::b/ab.zip"), [one]).allowed


def test_not_action_and_not_resource() -> None:
    all_but_delete = policy({"Effect": "Allow", "NotAction": "dynamodb:Delete*", "Resource": "*"})
    assert evaluate(req("dynamodb:PutItem"), [all_but_delete]).allowed
    assert not evaluate(req("dynamodb:DeleteItem"), [all_but_delete]).allowed
    elsewhere = policy(
        allow("dynamodb:*", "*"),
        {"Effect": "Deny", "Action": "dynamodb:*", "NotResource": TABLE},
    )
    assert evaluate(req("dynamodb:PutItem"), [elsewhere]).allowed
    other = TABLE.replace("f-jobs", "g-jobs")
    assert evaluate(req("dynamodb:PutItem", other), [elsewhere]).decision is Decision.EXPLICIT_DENY


def test_tls_only_bucket_policy_condition() -> None:
    bucket = "arn:aws:s3:::f-inputs"
    tls_only = policy(
        deny(
            "s3:*",
            [bucket, f"{bucket}/*"],
            Principal="*",
            Condition={"Bool": {"aws:SecureTransport": "false"}},
        )
    )
    identity = [policy(allow("s3:GetObject", f"{bucket}/*"))]
    over_tls = req("s3:GetObject", f"{bucket}/k")
    plain = Request("s3:GetObject", f"{bucket}/k", ROLE, {"aws:SecureTransport": "false"})
    assert evaluate(over_tls, identity, tls_only).allowed
    assert evaluate(plain, identity, tls_only).decision is Decision.EXPLICIT_DENY


def test_condition_operators() -> None:
    like = policy(allow("kms:Decrypt", "*", Condition={"StringLike": {"kms:ViaService": "s3.*"}}))
    assert evaluate(req("kms:Decrypt", "*", **{"kms:ViaService": "s3.us-east-1"}), [like]).allowed
    assert not evaluate(req("kms:Decrypt", "*", **{"kms:ViaService": "sqs.x"}), [like]).allowed
    assert not evaluate(req("kms:Decrypt", "*"), [like]).allowed  # key missing: false

    arn_like = policy(
        allow("sqs:SendMessage", "*", Condition={"ArnLike": {"aws:SourceArn": "arn:aws:s3:::f-*"}})
    )
    ok = req("sqs:SendMessage", "*", **{"aws:SourceArn": "arn:aws:s3:::f-inputs"})
    assert evaluate(ok, [arn_like]).allowed
    bad = req("sqs:SendMessage", "*", **{"aws:SourceArn": "arn:aws:s3:::g-inputs"})
    assert not evaluate(bad, [arn_like]).allowed

    not_equals = policy(
        deny("s3:*", "*", Condition={"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}}),
        allow("s3:*", "*"),
    )
    assert evaluate(
        req("s3:GetObject", "*", **{"aws:PrincipalAccount": ACCOUNT}), [not_equals]
    ).allowed
    # a negated operator holds when the key is missing, so the Deny applies
    assert not evaluate(req("s3:GetObject", "*"), [not_equals]).allowed

    if_exists = policy(
        allow("s3:GetObject", "*", Condition={"StringEqualsIfExists": {"s3:prefix": "a/"}})
    )
    assert evaluate(req("s3:GetObject", "*"), [if_exists]).allowed
    assert not evaluate(req("s3:GetObject", "*", **{"s3:prefix": "b/"}), [if_exists]).allowed

    null = policy(allow("s3:GetObject", "*", Condition={"Null": {"aws:SourceVpc": "true"}}))
    assert evaluate(req("s3:GetObject", "*"), [null]).allowed
    assert not evaluate(req("s3:GetObject", "*", **{"aws:SourceVpc": "vpc-1"}), [null]).allowed

    unknown = policy(allow("s3:GetObject", "*", Condition={"IpAddress": {"aws:SourceIp": "1/8"}}))
    with pytest.raises(UnsupportedCondition):
        evaluate(req("s3:GetObject", "*", **{"aws:SourceIp": "1.2.3.4"}), [unknown])


def test_key_policy_must_allow_the_caller_or_delegate_to_the_account() -> None:
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k"
    identity = [policy(allow("kms:Decrypt", key))]
    delegates = policy(allow("kms:*", "*", Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))
    service_only = policy(allow("kms:*", "*", Principal={"Service": "s3.amazonaws.com"}))
    names_role = policy(allow("kms:Decrypt", "*", Principal={"AWS": ROLE}))
    assert evaluate(req("kms:Decrypt", key), identity, delegates, key_policy=True).allowed
    assert not evaluate(req("kms:Decrypt", key), [], delegates, key_policy=True).allowed
    assert not evaluate(req("kms:Decrypt", key), identity, service_only, key_policy=True).allowed
    assert evaluate(req("kms:Decrypt", key), [], names_role, key_policy=True).allowed


def test_operations_map_to_real_actions_and_resources() -> None:
    pairs = authorizations(
        "dynamodb", "BatchWriteItem", {"RequestItems": {"f-jobs": None}}, "us-east-1", ACCOUNT
    )
    assert pairs == [("dynamodb:BatchWriteItem", TABLE)]
    query = authorizations(
        "dynamodb",
        "Query",
        {"TableName": "f-jobs", "IndexName": "phase-index"},
        "us-east-1",
        ACCOUNT,
    )
    assert query == [("dynamodb:Query", f"{TABLE}/index/phase-index")]
    assert authorizations("s3", "HeadObject", {"Bucket": "b", "Key": "k"}, "r", ACCOUNT) == [
        ("s3:GetObject", "arn:aws:s3:::b/k")
    ]
    submit = authorizations(
        "batch", "SubmitJob", {"jobQueue": "q", "jobDefinition": "d:3"}, "us-east-1", ACCOUNT
    )
    assert [r for _, r in submit] == [
        f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/q",
        f"arn:aws:batch:us-east-1:{ACCOUNT}:job-definition/d:3",
    ]
    assert authorizations("sts", "GetCallerIdentity", {}, "r", ACCOUNT) == []
    assert known_action("dynamodb:BatchWriteItem") and known_action("lambda:InvokeFunction")
    assert not known_action("lambda:Invoke") and not known_action("s3:HeadObject")


def _flock(scheduler_policy: dict[str, Any]) -> FlockPolicies:
    outputs = {
        "flock_name": "f",
        "region": "us-east-1",
        "account_id": ACCOUNT,
        "table_name": "f-jobs",
        "inputs_bucket": "f-inputs-1",
        "outputs_bucket": "f-outputs-1",
        "errors_bucket": "f-errors-1",
        "quick_deploy_bucket": "f-quick-deploy-1",
        "secret_name": "f-secrets",
        "secret_arn": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:f-secrets-Q1w2E3",
        "job_queue_arn": f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/f-queue",
        "job_definition_arn": f"arn:aws:batch:us-east-1:{ACCOUNT}:job-definition/f-job:1",
    }
    roles = {"scheduler": Role("f-scheduler", ROLE, (scheduler_policy,))}
    return FlockPolicies(outputs, roles, {}, {}, "", None)


def _old_scheduler_policy() -> dict[str, Any]:
    """The scheduler's policy as Terraform rendered it before BatchWriteItem/DeleteItem, with
    the applied flock's names replaced by this test's."""
    text = (FIXTURES / "scheduler-policy-before-fix.json").read_text()
    text = text.replace("itest-flock-jobs", "f-jobs")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def test_a_recorded_batch_write_is_denied_by_the_pre_fix_scheduler_policy() -> None:
    # What the scheduler records for an array job: the test's own table, configured through
    # FlockSettings, translated onto the applied flock's table.
    call = Call("scheduler", "dynamodb", "BatchWriteItem", "us-east-1",
                {"RequestItems": {"test-jobs-1": None}}, status=200)  # fmt: skip
    names = {"test-jobs-1": ("flock", "table_name")}
    report = check([call], names, _flock(_old_scheduler_policy()))
    assert [str(d) for d in report.denials] == [
        f"scheduler: dynamodb:BatchWriteItem on {TABLE} (dynamodb.BatchWriteItem): "
        "not allowed by any statement in role f-scheduler"
    ]
    assert not report.ok

    fixed = _old_scheduler_policy()
    fixed["Statement"][0]["Action"].append("dynamodb:BatchWriteItem")
    assert check([call], names, _flock(fixed)).ok


def test_refused_calls_and_the_tests_own_calls_are_not_charged() -> None:
    missing = "ResourceNotFoundException"
    refused = Call("scheduler", "dynamodb", "DeleteItem", "us-east-1",
                   {"TableName": "f-jobs"}, status=400, error=missing)  # fmt: skip
    report = check([refused], {}, _flock(_old_scheduler_policy()))
    assert report.ok and report.skipped_refused == 1
    assert part_of_stack(None) is None


def test_unused_grants_are_listed() -> None:
    call = Call("scheduler", "dynamodb", "PutItem", "us-east-1", {"TableName": "f-jobs"}, 200)
    report = check([call], {}, _flock(_old_scheduler_policy()))
    unused = report.unused["f-scheduler"]
    assert "dynamodb:PutItem" not in unused and "sqs:ReceiveMessage" in unused


def test_the_doc_policy_allows_exactly_what_was_recorded() -> None:
    flock = _flock(_old_scheduler_policy())
    query = Call("cli:query", "dynamodb", "Query", "us-east-1",
                 {"TableName": "q-jobs", "IndexName": "phase-index"}, 200)  # fmt: skip
    names = {"q-jobs": ("profile", "dynamo_db_to_query")}
    flock.outputs = {**flock.outputs, "cli_profile": {"shepard_dynamo_db_to_query": "f-jobs"}}
    report = check([query], names, flock)
    assert report.cli == {
        "query": {("dynamodb:Query", "arn:aws:dynamodb:REGION:ACCOUNT:table/FLOCK_TABLE/index/*")}
    }
    documented = documented_policies(render_doc(report.cli))
    assert check([query], names, flock, documented).ok
    get = Call("cli:query", "dynamodb", "GetItem", "us-east-1", {"TableName": "q-jobs"}, 200)
    stale = check([query, get], names, flock, documented)
    assert [d.authorization.action for d in stale.denials] == ["dynamodb:GetItem"]
    assert doc_resource("arn:aws:s3:::f-inputs-1/a/b.zip", flock.outputs) == (
        "arn:aws:s3:::INPUTS_BUCKET/*"
    )


def test_a_denied_call_fails_a_session_whose_tests_all_passed() -> None:
    call = Call("scheduler", "dynamodb", "BatchWriteItem", "us-east-1",
                {"RequestItems": {"f-jobs": None}}, status=200)  # fmt: skip
    report = check([call], {}, _flock(_old_scheduler_policy()))

    class Session:
        exitstatus: int = pytest.ExitCode.OK

    session = Session()
    conclude(session, report)
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert report.lines()[-1].startswith("IAM conformance FAILED: 1 denied call(s)")
    failed = Session()
    failed.exitstatus = pytest.ExitCode.INTERRUPTED
    conclude(failed, report)  # a worse status is kept
    assert failed.exitstatus == pytest.ExitCode.INTERRUPTED
    passed = Session()
    conclude(passed, check([], {}, _flock(_old_scheduler_policy())))
    assert passed.exitstatus == pytest.ExitCode.OK


def test_the_check_commands_resources_come_from_its_flocks_outputs() -> None:
    flock = _flock(_old_scheduler_policy())
    flock.outputs = {**flock.outputs, "inputs_bucket": "f-inputs-1",
                     "sqs_queue_url": f"http://127.0.0.1:1/{ACCOUNT}/f-scheduler",
                     "sqs_queue_arn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:f-scheduler",
                     "scheduler_function_name": "f-scheduler"}  # fmt: skip
    calls = [
        Call("cli:check", "s3", "GetBucketNotificationConfiguration", "us-east-1",
             {"Bucket": "other-inputs"}, 200),
        Call("cli:check", "sqs", "GetQueueAttributes", "us-east-1",
             {"QueueUrl": f"http://127.0.0.1:2/{ACCOUNT}/other-scheduler"}, 200),
        Call("cli:check", "sqs", "GetQueueAttributes", "us-east-1",
             {"QueueUrl": f"http://127.0.0.1:2/{ACCOUNT}/other-scheduler"}, 200),
    ]  # fmt: skip
    names = {
        "other-inputs": ("outputs", "inputs_bucket"),
        f"http://127.0.0.1:2/{ACCOUNT}/other-scheduler": ("outputs", "sqs_queue_url"),
    }
    report = check(calls, names, flock, documented={})
    assert report.cli == {
        "check": {
            ("s3:GetBucketNotification", "arn:aws:s3:::INPUTS_BUCKET"),
            ("sqs:GetQueueAttributes", "arn:aws:sqs:REGION:ACCOUNT:FLOCK_QUEUE"),
        }
    }
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/2045cf5c-0499-47aa-895c-c1bb3c42b9ac"
    assert doc_resource(key, flock.outputs) == "arn:aws:kms:REGION:ACCOUNT:key/FLOCK_KEY"
    # Undocumented: one denial per action and resource, however often the command called it.
    assert len(report.denials) == 2 and not report.unknown_actions


def test_the_doc_names_the_commands_that_made_no_aws_call() -> None:
    cli = {"query": {("dynamodb:Query", "arn:aws:dynamodb:REGION:ACCOUNT:table/FLOCK_TABLE")}}
    doc = render_doc(cli, {"query", "describe", "check_role", "apply"})
    assert "The tests also ran `check_role`, `describe`: these made no AWS call" in doc
    assert list(documented_policies(doc)) == ["query"]


def test_the_doc_grants_the_calls_only_aws_can_make_and_docs_iam_md_has_them() -> None:
    from tests.support.iam_check import AWS_ONLY_CALLS, DOC

    cli: dict[str, set[tuple[str, str]]] = {
        "check": {("batch:DescribeJobQueues", "*")},
        "batch_via_api": {("lambda:InvokeFunction", "*")},
        "why": {("batch:DescribeJobs", "*")},
    }
    cli.update({command: set() for command in AWS_ONLY_CALLS if command not in cli})
    rendered = documented_policies(render_doc(cli))
    on_disk = documented_policies(DOC.read_text())
    log_group = "arn:aws:logs:REGION:ACCOUNT:log-group:/aws/lambda/FLOCK-scheduler"
    concrete = {"arn:aws:logs:REGION:ACCOUNT:log-group:/aws/lambda/FLOCK-*": log_group}
    for command, calls in AWS_ONLY_CALLS.items():
        for action, resource in calls:
            request = Request(action, concrete.get(resource, resource))
            for where, policies in (("rendered", rendered), ("docs/iam.md", on_disk)):
                decision = evaluate(request, [policies[command]]).decision
                assert decision is Decision.ALLOW, f"{where}: {command} may not {action}"
    # and what the AWS-only statements grant stays narrow
    other_group = "arn:aws:logs:REGION:ACCOUNT:log-group:/aws/batch/FLOCK"
    assert (
        evaluate(Request("logs:FilterLogEvents", other_group), [on_disk["check"]]).decision
        is not Decision.ALLOW
    )
    lambda_stream = f"{log_group}:log-stream:2026/11/29/[$LATEST]0123"
    assert (
        evaluate(Request("logs:GetLogEvents", lambda_stream), [on_disk["why"]]).decision
        is not Decision.ALLOW
    )
