"""IAM conformance: the calls the parts made, evaluated against the policies Terraform applied.

``FlockPolicies.from_state`` reads the applied flock's Terraform state (what ``terraform show
-json`` shows of it): each role's inline policies, the bucket, key and queue policies, and the
resource names. ``check`` translates each recorded call onto that flock (tests name their own
tables and buckets; ``iam_record`` noted which setting each name came from), derives the IAM
action and resource ARN (``iam_actions``), adds the KMS calls S3 and Secrets Manager make for the
caller on the flock's key, and evaluates every one with ``iam_policy.evaluate``:

* a call of the scheduler, the API, the worker or a payload that its role would be refused is a
  **denial** (the session fails, naming part, action and resource);
* an action a role's policy grants and no call used is listed as **unused**;
* the CLI's calls are gathered per command: ``render_doc`` writes docs/iam.md from them, and a
  recorded CLI call that the policy documented for its command does not allow is a denial too.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.support.iam_actions import authorizations, known_action
from tests.support.iam_policy import Policy, Request, evaluate, load, statements
from tests.support.iam_record import Call

REPO = Path(__file__).resolve().parents[2]
# Set by the ``applied_flock`` fixture right after its apply; read at the end of the session.
APPLIED: FlockPolicies | None = None
LAST_REPORT: Report | None = None
DOC = REPO / "docs" / "iam.md"
ROLE_OF_PART = {
    "scheduler": "scheduler",
    "api": "api",
    "events": "events",
    "worker": "job",
    "payload": "job",
}
BUCKETS = ("inputs_bucket", "outputs_bucket", "errors_bucket", "quick_deploy_bucket")
# The applied flock's name for each setting a part can be configured with.
_OUTPUT_OF_FIELD = {
    "table_name": "table_name",
    "job_queue": "job_queue_arn",
    "job_definition": "job_definition_arn",
    "secret_name": "secret_name",
    "ecr_repository_name": "ecr_repository_name",
    **{b: b for b in BUCKETS},
}
# How docs/iam.md names the flock's resources.
_PLACEHOLDER = {
    "table_name": "FLOCK_TABLE",
    "inputs_bucket": "INPUTS_BUCKET",
    "outputs_bucket": "OUTPUTS_BUCKET",
    "errors_bucket": "ERRORS_BUCKET",
    "quick_deploy_bucket": "QUICK_DEPLOY_BUCKET",
    "secret_name": "FLOCK_SECRET",
    "ecr_repository_name": "FLOCK_REPOSITORY",
    "job_queue_name": "FLOCK_JOB_QUEUE",
    "job_definition_name": "FLOCK_JOB_DEFINITION",
    "api_function_name": "FLOCK_API_FUNCTION",
    "scheduler_function_name": "FLOCK_SCHEDULER_FUNCTION",
    "flock_name": "FLOCK",
    "account_id": "ACCOUNT",
    "region": "REGION",
}
_KMS_FOR = {
    ("s3", "GetObject"): ("kms:Decrypt",),
    ("s3", "PutObject"): ("kms:GenerateDataKey",),
    ("s3", "CreateMultipartUpload"): ("kms:GenerateDataKey",),
    ("s3", "UploadPart"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("s3", "CompleteMultipartUpload"): ("kms:Decrypt",),
    ("s3", "CopyObject"): ("kms:GenerateDataKey", "kms:Decrypt"),
    ("secretsmanager", "GetSecretValue"): ("kms:Decrypt",),
    ("secretsmanager", "CreateSecret"): ("kms:GenerateDataKey",),
    ("secretsmanager", "PutSecretValue"): ("kms:GenerateDataKey",),
}


@dataclass(frozen=True)
class Role:
    name: str
    arn: str
    policies: tuple[Policy, ...]


@dataclass
class FlockPolicies:
    outputs: Mapping[str, Any]
    roles: dict[str, Role]  # by suffix: scheduler, api, job, ...
    bucket_policies: dict[str, Policy]
    queue_policies: dict[str, Policy]  # by queue ARN
    key_arn: str
    key_policy: Policy | None
    state: Mapping[str, Any] = field(default_factory=dict, repr=False)  # as read

    @classmethod
    def from_state(cls, state: Mapping[str, Any], outputs: Mapping[str, Any]) -> FlockPolicies:
        by_type: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for resource in state.get("resources", []):
            if resource.get("mode") != "managed":
                continue
            for instance in resource.get("instances", []):
                by_type[resource["type"]].append(instance["attributes"])
        flock = str(outputs["flock_name"])
        inline: dict[str, list[Policy]] = defaultdict(list)
        for attrs in by_type["aws_iam_role_policy"]:
            inline[attrs["role"]].append(load(attrs["policy"]))
        roles = {
            attrs["name"].removeprefix(f"{flock}-"): Role(
                attrs["name"], attrs["arn"], tuple(inline.get(attrs["name"], ()))
            )
            for attrs in by_type["aws_iam_role"]
        }
        keys = by_type["aws_kms_key"]
        key_policies = by_type["aws_kms_key_policy"] or keys
        return cls(
            outputs=outputs,
            roles=roles,
            bucket_policies={
                a["bucket"]: load(a["policy"]) for a in by_type["aws_s3_bucket_policy"]
            },
            queue_policies={
                _queue_arn(a["queue_url"], outputs): load(a["policy"])
                for a in by_type["aws_sqs_queue_policy"]
            },
            key_arn=str(keys[0]["arn"]) if keys else "",
            key_policy=load(key_policies[0]["policy"]) if key_policies else None,
            state=state,
        )

    @classmethod
    def from_state_file(cls, path: Path, outputs: Mapping[str, Any]) -> FlockPolicies:
        return cls.from_state(json.loads(path.read_text()), outputs)


def _queue_arn(url: str, outputs: Mapping[str, Any]) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return f"arn:aws:sqs:{outputs['region']}:{outputs['account_id']}:{name}"


# ----------------------------------------------------------------------------------------------
# Translating a test's resource names onto the applied flock
# ----------------------------------------------------------------------------------------------


def translation(names: Mapping[str, tuple[str, str]], outputs: Mapping[str, Any]) -> dict[str, str]:
    """Resource name a part was configured with -> the applied flock's resource."""
    profile = outputs.get("cli_profile") or {}
    mapping: dict[str, str] = {}
    for value, (origin, name) in names.items():
        if origin == "flock" and name in _OUTPUT_OF_FIELD:
            target = outputs.get(_OUTPUT_OF_FIELD[name])
        elif origin == "profile":
            target = profile.get(f"shepard_{name}")
        elif origin == "outputs":  # another flock's Terraform output of the same name
            target = outputs.get(name)
        else:
            target = None
        if isinstance(target, str) and target:
            mapping[value] = target
    return mapping


def _translate(value: Any, mapping: Mapping[str, str], secret: bool = False) -> Any:
    if not isinstance(value, str):
        return value
    if value in mapping:
        return mapping[value]
    if secret:
        for name, target in mapping.items():
            if value.startswith(f"{name}-part-"):
                return target + value[len(name) :]
    return value


def translate_call(call: Call, mapping: Mapping[str, str], outputs: Mapping[str, Any]) -> Call:
    params = dict(call.params)
    for key in (
        "Bucket",
        "TableName",
        "jobQueue",
        "jobDefinition",
        "repositoryName",
        "FunctionName",
        "QueueUrl",
    ):
        if key in params:
            params[key] = _translate(params[key], mapping)
    if call.service == "secretsmanager":
        for key in ("SecretId", "Name"):
            if key in params:
                params[key] = _translate(params[key], mapping, secret=True)
                if params[key] == outputs.get("secret_name") and key == "SecretId":
                    params[key] = outputs.get("secret_arn", params[key])
    if "RequestItems" in params:
        params["RequestItems"] = {_translate(t, mapping): None for t in params["RequestItems"]}
    if "TransactItems" in params:
        params["TransactItems"] = [
            {k: {"TableName": _translate(b["TableName"], mapping)} for k, b in item.items()}
            for item in params["TransactItems"]
        ]
    if isinstance(params.get("CopySource"), Mapping):
        source = dict(params["CopySource"])
        source["Bucket"] = _translate(source.get("Bucket"), mapping)
        params["CopySource"] = source
    return Call(
        call.part, call.service, call.operation, call.region, params, call.status, call.error
    )


# ----------------------------------------------------------------------------------------------
# Checking
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Authorization:
    part: str
    action: str
    resource: str
    call: str  # "s3.GetObject"
    implicit: bool = False  # a KMS call another service makes for the caller


@dataclass
class Denial:
    authorization: Authorization
    reason: str

    def __str__(self) -> str:
        a = self.authorization
        via = f" (made by {a.call} on the caller's behalf)" if a.implicit else f" ({a.call})"
        return f"{a.part}: {a.action} on {a.resource}{via}: {self.reason}"


@dataclass
class Report:
    denials: list[Denial] = field(default_factory=list)
    unknown_actions: set[str] = field(default_factory=set)
    unused: dict[str, list[str]] = field(default_factory=dict)  # role -> granted, never used
    cli: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # command -> (act, res)
    unmapped: list[Denial] = field(default_factory=list)  # on resources only a test made
    evaluated: int = 0
    skipped_refused: int = 0  # calls the emulator refused for another reason

    @property
    def ok(self) -> bool:
        return not self.denials and not self.unknown_actions

    def lines(self) -> list[str]:
        out = [
            f"IAM conformance: {self.evaluated} authorisations evaluated against the applied "
            f"flock's policies; {self.skipped_refused} calls the emulator refused for another "
            "reason were not."
        ]
        out += [f"  DENIED {d}" for d in self.denials]
        out += [
            f"  UNKNOWN ACTION {a}: not in AWS's service authorization reference; fix the "
            "mapping in tests/support/iam_actions.py"
            for a in sorted(self.unknown_actions)
        ]
        out += [
            f"  not evaluated (a resource the test made itself, no part setting names it): {d}"
            for d in self.unmapped
        ]
        for role, actions in sorted(self.unused.items()):
            if actions:
                out.append(f"  granted to role {role} and never used: {', '.join(actions)}")
        if not self.ok:
            out.append(
                f"IAM conformance FAILED: {len(self.denials)} denied call(s), "
                f"{len(self.unknown_actions)} unknown action(s): the session fails."
            )
        return out


def kms_context(call: Call, resource: str, outputs: Mapping[str, Any]) -> dict[str, str]:
    region = str(outputs["region"])
    if call.service == "s3":
        bucket = resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
        return {
            "kms:ViaService": f"s3.{region}.amazonaws.com",
            "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}",
        }
    return {
        "kms:ViaService": f"secretsmanager.{region}.amazonaws.com",
        "kms:EncryptionContext:SecretARN": resource,
    }


def _encrypted_by_flock_key(service: str, resource: str, outputs: Mapping[str, Any]) -> bool:
    if service == "s3":
        bucket = resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
        return bucket in {outputs.get(b) for b in BUCKETS}
    if service == "secretsmanager":
        name = str(outputs.get("secret_name"))
        prefix = f"arn:aws:secretsmanager:{outputs['region']}:{outputs['account_id']}:secret:"
        return resource.startswith(prefix + name)
    return False


def authorizations_of(call: Call, flock: FlockPolicies) -> list[Authorization]:
    outputs = flock.outputs
    found = []
    pairs = authorizations(
        call.service,
        call.operation,
        call.params,
        call.region or str(outputs["region"]),
        str(outputs["account_id"]),
    )
    for action, resource in pairs:
        label = f"{call.service}.{call.operation}"
        found.append(Authorization(call.part, action, resource, label))
        if flock.key_arn and _encrypted_by_flock_key(call.service, resource, outputs):
            for kms_action in _KMS_FOR.get((call.service, call.operation), ()):
                found.append(Authorization(call.part, kms_action, flock.key_arn, label, True))
    return found


def _context(flock: FlockPolicies, role: Role, auth: Authorization, call: Call) -> dict[str, str]:
    context = {
        "aws:SecureTransport": "true",
        "aws:PrincipalArn": role.arn,
        "aws:PrincipalAccount": str(flock.outputs["account_id"]),
        "aws:RequestedRegion": str(flock.outputs["region"]),
    }
    if auth.implicit:
        context |= kms_context(call, _resource_of_first(call, flock), flock.outputs)
    if auth.action == "s3:ListBucket" and "Prefix" in call.params:
        context["s3:prefix"] = str(call.params["Prefix"])  # what a ListBucket condition reads
    return context


def _resource_of_first(call: Call, flock: FlockPolicies) -> str:
    pairs = authorizations(
        call.service,
        call.operation,
        call.params,
        str(flock.outputs["region"]),
        str(flock.outputs["account_id"]),
    )
    return pairs[0][1] if pairs else "*"


def _resource_policy(auth: Authorization, flock: FlockPolicies) -> tuple[Policy | None, bool]:
    if auth.action.startswith("kms:"):
        return flock.key_policy, True
    if auth.action.startswith("s3:") and auth.resource.startswith("arn:aws:s3:::"):
        bucket = auth.resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
        return flock.bucket_policies.get(bucket), False
    if auth.action.startswith("sqs:"):
        return flock.queue_policies.get(auth.resource), False
    return None, False


def decide(
    auth: Authorization,
    call: Call,
    role: Role,
    flock: FlockPolicies,
    identity: Sequence[Policy] | None = None,
) -> str | None:
    """None when allowed, else the reason."""
    resource_policy, is_key = _resource_policy(auth, flock)
    request = Request(auth.action, auth.resource, role.arn, _context(flock, role, auth, call))
    outcome = evaluate(
        request,
        role.policies if identity is None else identity,
        resource_policy,
        key_policy=is_key,
    )
    if outcome.allowed:
        return None
    where = f"role {role.name}" + (" and the resource's policy" if resource_policy else "")
    return f"{outcome.decision.value} in {where}" + (
        f" (statements {', '.join(outcome.statements)})" if outcome.statements else ""
    )


def check(
    calls: Iterable[Call],
    names: Mapping[str, tuple[str, str]],
    flock: FlockPolicies,
    documented: Mapping[str, Policy] | None = None,
) -> Report:
    """Evaluate every recorded call; ``documented`` is docs/iam.md's policy per CLI command."""
    report = Report()
    mapping = translation(names, flock.outputs)
    used: dict[str, set[str]] = defaultdict(set)
    seen: set[tuple[str, str, str, bool, Any]] = set()
    for raw in calls:
        if not raw.accepted:
            report.skipped_refused += 1
            continue
        call = translate_call(raw, mapping, flock.outputs)
        for auth in authorizations_of(call, flock):
            if not known_action(auth.action):
                report.unknown_actions.add(auth.action)
                continue
            if auth.part.startswith("cli:"):
                if _test_made(call, names):
                    continue  # a test's own flock (its test evaluates it against the doc)
                command = auth.part.removeprefix("cli:")
                report.cli.setdefault(command, set()).add(
                    (auth.action, doc_resource(auth.resource, flock.outputs))
                )
                _check_documented(auth, call, flock, documented, report)
                continue
            role_suffix = ROLE_OF_PART.get(auth.part)
            role = flock.roles.get(role_suffix or "")
            if role is None:
                continue
            # A ListBucket's condition reads its prefix: each prefix is its own request.
            key = (auth.part, auth.action, auth.resource, auth.implicit, call.params.get("Prefix"))
            if key in seen:
                continue
            seen.add(key)
            report.evaluated += 1
            reason = decide(auth, call, role, flock)
            if reason is None:
                used[role.name].add(auth.action.lower())
            elif _test_made(call, names):
                report.unmapped.append(Denial(auth, reason))
            else:
                report.denials.append(Denial(auth, reason))
    for suffix in sorted(set(ROLE_OF_PART.values())):
        role = flock.roles.get(suffix)
        if role is not None:
            report.unused[role.name] = sorted(
                a for a in granted_actions(role.policies) if a.lower() not in used[role.name]
            )
    return report


def _test_made(call: Call, names: Mapping[str, tuple[str, str]]) -> bool:
    """Whether the call names a resource that only the test's own code created."""
    return any(
        isinstance(v, str)
        and "test" in (names.get(v, ("", ""))[0], names.get(_arn_name(v), ("", ""))[0])
        for v in call.params.values()
    )


def _arn_name(value: str) -> str:
    """The name at the end of an ARN (``...:job-queue/NAME`` -> ``NAME``); else ``value``."""
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


def _check_documented(
    auth: Authorization,
    call: Call,
    flock: FlockPolicies,
    documented: Mapping[str, Policy] | None,
    report: Report,
) -> None:
    if documented is None:
        return
    command = auth.part.removeprefix("cli:")
    user = Role(
        f"CLI user of `{command}`", f"arn:aws:iam::{flock.outputs['account_id']}:user/cli", ()
    )
    policy = documented.get(command)
    generic = Authorization(
        auth.part, auth.action, doc_resource(auth.resource, flock.outputs), auth.call, auth.implicit
    )
    reason = "docs/iam.md documents no policy for this command" if policy is None else None
    if policy is not None:
        request = Request(
            generic.action, generic.resource, user.arn, {"aws:SecureTransport": "true"}
        )
        outcome = evaluate(request, [policy])
        if not outcome.allowed:
            reason = f"{outcome.decision.value} in docs/iam.md's policy for `{command}`"
    if reason is not None:
        denial = Denial(generic, reason + " (run `make iam-doc`)")
        if str(denial) not in {str(d) for d in report.denials}:
            report.denials.append(denial)


def granted_actions(policies: Iterable[Policy]) -> list[str]:
    granted: set[str] = set()
    for policy in policies:
        for st in statements(policy):
            if st.get("Effect") != "Allow":
                continue
            actions = st.get("Action")
            granted.update(
                str(a) for a in (actions if isinstance(actions, list) else [actions]) if a
            )
    return sorted(granted)


# ----------------------------------------------------------------------------------------------
# docs/iam.md
# ----------------------------------------------------------------------------------------------


def doc_resource(resource: str, outputs: Mapping[str, Any]) -> str:
    """An ARN of the applied flock, generalised (any object, any job) and with placeholders."""
    if resource == "*":
        return resource
    generic = resource
    if generic.startswith("arn:aws:s3:::") and "/" in generic:
        generic = generic.split("/", 1)[0] + "/*"
    generic = re.sub(r"(:table/[^/]+/index/).*", r"\1*", generic)
    generic = re.sub(r"(:job/).*", r"\1*", generic)
    generic = re.sub(r"(:log-stream:).*", r"\1*", generic)
    generic = re.sub(r"(:job-definition/[^:]+):\d+$", r"\1:*", generic)
    secret_arn = str(outputs.get("secret_arn", ""))
    if secret_arn and generic.startswith(secret_arn):
        generic = generic.replace(secret_arn, f"{secret_arn.rsplit('-', 1)[0]}-*", 1)
    generic = re.sub(r"(:secret:.+)-AbCdEf$", r"\1-*", generic)
    # The flock's key and queue: named before the placeholders below, which would otherwise
    # write the queue (named like the scheduler) as the scheduler function.
    generic = re.sub(r"^(arn:aws:kms:[^:]*:[^:]*:key/)[0-9a-f-]{36}$", r"\1FLOCK_KEY", generic)
    if generic == outputs.get("sqs_queue_arn"):
        generic = generic.rsplit(":", 1)[0] + ":FLOCK_QUEUE"
    values = sorted(
        ((str(outputs[k]), p) for k, p in _PLACEHOLDER.items() if outputs.get(k)),
        key=lambda item: -len(item[0]),
    )
    for value, placeholder in values:
        generic = generic.replace(value, placeholder)
    return generic


_DOC_HEAD = """\
# The IAM policy a CLI user needs, per command

Generated by `make iam-doc` from the AWS calls each command made while the integration and
end-to-end tests ran (tests/support/iam_record.py); the test session fails when a command makes a
call its policy here does not allow. Replace the placeholders with your flock's values
(`shepard-tf output FLOCK --json`): `FLOCK` is the flock's name, `FLOCK_TABLE` its job table,
`INPUTS_BUCKET`, `OUTPUTS_BUCKET`, `ERRORS_BUCKET`, `QUICK_DEPLOY_BUCKET` its buckets,
`FLOCK_SECRET` its secret, `FLOCK_REPOSITORY` its ECR repository, `FLOCK_JOB_QUEUE` and
`FLOCK_JOB_DEFINITION` its Batch queue and job definition, `FLOCK_API_FUNCTION` and
`FLOCK_SCHEDULER_FUNCTION` its Lambdas, `FLOCK_QUEUE` the scheduler's SQS queue, `FLOCK_KEY` the
id of its KMS key, `REGION` and `ACCOUNT` where it lives. With `encryption.kms_key: flock` the
buckets and the secret are encrypted with the flock's KMS key: the `kms:` statements are what S3
and Secrets Manager use on the user's behalf. With the default `aws_managed` there is no such key
and the `kms:` statements are not needed (AWS managed keys grant their own use).

Calling the API through its function URL (`batch_via_api` with an endpoint URL) needs both
`lambda:InvokeFunctionUrl` and `lambda:InvokeFunction` on the API function.

`apply`, `plan` and `destroy` run Terraform: the deployer needs the rights to create every
resource of the flock (docs/aws.md); they are not listed here.
"""


def policy_for(authorizations: Iterable[tuple[str, str]]) -> dict[str, Any]:
    by_resources: dict[str, set[str]] = defaultdict(set)
    for action, resource in authorizations:
        by_resources[action].add(resource)
    grouped: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for action, resources in by_resources.items():
        grouped[tuple(sorted(resources))].add(action)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": sorted(actions), "Resource": list(resources)}
            for resources, actions in sorted(grouped.items(), key=lambda kv: sorted(kv[1]))
        ],
    }


# Commands that run Terraform: the deployer's rights, not listed (docs/aws.md).
_TERRAFORM_COMMANDS = {"apply", "plan", "destroy", "deploy"}


def _declared_commands() -> set[str]:
    from shepard.cli import COMMANDS

    return {command.name for command in COMMANDS}


# Calls a command makes only against AWS, which no test here can record: the function URL
# (the local flock answers Invoke), and check's reads of Batch jobs and CloudWatch Logs (the
# local flock has no log groups; its canary finds its job in the table).
AWS_ONLY_CALLS: dict[str, tuple[tuple[str, str], ...]] = {
    "batch_via_api": (
        ("lambda:InvokeFunctionUrl", "arn:aws:lambda:REGION:ACCOUNT:function:FLOCK_API_FUNCTION"),
    ),
    "check": (
        ("batch:DescribeJobs", "*"),  # Batch has no resource-level permission for it
        (
            "logs:FilterLogEvents",
            "arn:aws:logs:REGION:ACCOUNT:log-group:/aws/lambda/FLOCK-*",
        ),
    ),
    # Batch's cancel and terminate of the jobs (the local flock's executor stops its own).
    "cancel": (
        ("batch:CancelJob", "arn:aws:batch:REGION:ACCOUNT:job/*"),
        ("batch:TerminateJob", "arn:aws:batch:REGION:ACCOUNT:job/*"),
        # An array job none of whose children has started: found by name (no resource-level
        # permissions for ListJobs).
        ("batch:ListJobs", "*"),
    ),
    # A job's log from CloudWatch (the local flock reads its log file instead).
    "logs": (
        (
            "logs:GetLogEvents",
            "arn:aws:logs:REGION:ACCOUNT:log-group:/aws/batch/FLOCK:log-stream:*",
        ),
    ),
    # A failed job's last log lines (the local flock reads its log file instead).
    "why": (
        (
            "logs:GetLogEvents",
            "arn:aws:logs:REGION:ACCOUNT:log-group:/aws/batch/FLOCK:log-stream:*",
        ),
    ),
}


def render_doc(cli: Mapping[str, set[tuple[str, str]]], commands: Iterable[str] = ()) -> str:
    parts = [_DOC_HEAD]
    quiet = sorted(set(commands) & _declared_commands() - set(cli) - _TERRAFORM_COMMANDS)
    if quiet:
        parts.append(
            "\nThe tests also ran "
            + ", ".join(f"`{c}`" for c in quiet)
            + ": these made no AWS call of their own (they read the flock's state, Terraform's"
            " outputs, the profiles or the cached role credentials), so they need no policy"
            " here. `deploy`, like `apply`, runs Terraform.\n"
        )
    for command in sorted(cli):
        policy = policy_for(cli[command])
        for action, resource in AWS_ONLY_CALLS.get(command, ()):
            policy["Statement"].append(
                {"Effect": "Allow", "Action": [action], "Resource": [resource]}
            )
        parts.append(f"\n## `{command}`\n\n```json\n{json.dumps(policy, indent=2)}\n```\n")
    return "".join(parts)


def dump_records(
    calls: Iterable[Call],
    names: Mapping[str, tuple[str, str]],
    applied: FlockPolicies | None = None,
    commands: Iterable[str] = (),
) -> str:
    """The session's records (and the applied flock's state), for ``tests/support/iam_doc.py``."""
    data: dict[str, Any] = {
        "calls": [asdict(c) for c in calls],
        "names": {k: list(v) for k, v in names.items()},
        "commands": sorted(commands),
    }
    if applied is not None:
        data["applied"] = {"state": applied.state, "outputs": applied.outputs}
    return json.dumps(data, indent=1)


def load_records(text: str) -> tuple[list[Call], dict[str, tuple[str, str]]]:
    data = json.loads(text)
    names = {k: (v[0], v[1]) for k, v in data["names"].items()}
    return [Call(**c) for c in data["calls"]], names


def load_commands(text: str) -> set[str]:
    return set(json.loads(text).get("commands", []))


def load_applied(text: str) -> FlockPolicies | None:
    applied = json.loads(text).get("applied")
    if applied is None:
        return None
    return FlockPolicies.from_state(applied["state"], applied["outputs"])


def conclude(session: Any, report: Report) -> None:
    """A session whose calls the policies deny fails, even when every test passed."""
    import pytest

    if not report.ok and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def session_report(
    calls: Sequence[Call],
    names: Mapping[str, tuple[str, str]],
    applied: FlockPolicies,
    *,
    write_doc: bool,
    commands: Iterable[str] = (),
) -> Report:
    """The session's check: against docs/iam.md as it is, or writing it (``make iam-doc``)."""
    documented = None
    if not write_doc and DOC.is_file():
        documented = documented_policies(DOC.read_text())
    report = check(calls, names, applied, documented)
    if write_doc:
        DOC.write_text(render_doc(report.cli, commands))
    return report


def documented_policies(text: str) -> dict[str, Policy]:
    """docs/iam.md's policy per command."""
    found: dict[str, Policy] = {}
    for match in re.finditer(r"^## `([^`]+)`\n\n```json\n(.*?)\n```", text, re.M | re.S):
        found[match.group(1)] = json.loads(match.group(2))
    return found
