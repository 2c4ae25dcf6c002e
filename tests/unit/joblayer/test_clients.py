"""One client factory, one retry policy, one wording of AWS errors, one reader of the job table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from shepard_worker.aws import Aws as WorkerAws

from shepard.aws.session import AwsSettings
from shepard.aws.session import client as cli_client
from shepard.errors import BackendError
from shepard.joblayer import clients, contract
from shepard.joblayer.batch import BatchSubmitter
from shepard.joblayer.store import JobStore

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = [ROOT / "shepard", ROOT / "lambdas", ROOT / "worker" / "shepard_worker"]


def _session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id="k", aws_secret_access_key="s", region_name="eu-west-1"
    )


def _retries(client: object) -> dict[str, object]:
    retries: dict[str, object] = client.meta.config.retries  # type: ignore[attr-defined]
    return retries


def test_every_client_of_every_part_retries_the_same_way() -> None:
    standard = {"mode": "standard", "total_max_attempts": 6}  # botocore's form of max_attempts=5
    made = [
        clients.client("s3", session=_session()),
        cli_client(_session(), AwsSettings(config_dir=Path("/nonexistent"), env={}), "dynamodb"),
        WorkerAws(_session()).client("secretsmanager"),
        JobStore("t", clients.client("dynamodb", session=_session())).client,
    ]
    for client in made:
        assert _retries(client) == standard
        assert client.meta.config.connect_timeout == 10
    # The one caller that retries itself (counted, with backoff) turns the SDK's retries off.
    submitter = BatchSubmitter(
        "q", "d", clients.client("batch", session=_session(), config=clients.CALLER_RETRIES)
    )
    assert _retries(submitter.client) == {"mode": "standard", "total_max_attempts": 1}


def test_region_and_endpoint_override_the_session() -> None:
    made = clients.client(
        "sqs", session=_session(), region="us-west-2", endpoint_url="http://127.0.0.1:1"
    )
    assert made.meta.region_name == "us-west-2"
    assert made.meta.endpoint_url == "http://127.0.0.1:1"
    merged = clients.client("s3", session=_session(), config=Config(read_timeout=7))
    assert (merged.meta.config.read_timeout, _retries(merged)["total_max_attempts"]) == (7, 6)


def _client_error(code: str, message: str = "nope") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "GetSecretValue")


@pytest.mark.parametrize(
    ("error", "caller_side", "text"),
    [
        (NoCredentialsError(), True, "while reading x: no AWS credentials were found. Configure"),
        (
            _client_error("ExpiredToken"),
            True,
            "while reading x: the AWS credentials have expired (nope)",
        ),
        (_client_error("AccessDenied"), False, "while reading x: access denied (nope). Fix it."),
        (_client_error("Boom"), False, "while reading x: AWS answered Boom: nope. Fix it."),
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
            False,
            "while reading x: cannot reach http://127.0.0.1:9. Check the network",
        ),
    ],
)
def test_explain_words_an_error_once(error: Exception, caller_side: bool, text: str) -> None:
    explained = clients.explain(error, "reading x", "Fix it")
    assert explained is not None
    assert explained.caller_side is caller_side
    assert explained.message.startswith(text)
    assert clients.explain(ValueError("not AWS"), "reading x") is None


def test_the_worker_raises_the_same_words_as_a_backend_error() -> None:
    class Failing:
        def get_secret_value(self, **_: object) -> None:
            raise _client_error("AccessDeniedException", "no grant")

    aws = WorkerAws(_session())
    aws._clients["secretsmanager"] = Failing()
    with pytest.raises(BackendError) as caught:
        aws.secret_text("flock-secrets")
    assert caught.value.message == (
        'while reading the secret "flock-secrets": access denied (no grant). Check that the job'
        " role may read the flock's secrets, then retry the job."
    )


def _python_files() -> list[Path]:
    return [path for folder in PRODUCT for path in sorted(folder.rglob("*.py"))]


def test_only_the_factory_makes_boto3_clients() -> None:
    made_here = {ROOT / "shepard" / "joblayer" / "clients.py"}
    pattern = re.compile(r"boto3\.(client|resource)\(|session_?\.(client|resource)\(")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _python_files()
        if path not in made_here
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith(("#", '"', "serves"))
    ]
    assert offenders == []


TABLE_CALLS = {
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "batch_write_item",
    "query",
    "scan",
}


def test_only_jobstore_calls_the_job_table() -> None:
    """No DynamoDB item call outside shepard/joblayer/store.py (the table's one reader/writer)."""
    store = ROOT / "shepard" / "joblayer" / "store.py"
    testing = ROOT / "shepard" / "joblayer" / "testing.py"  # creates the table in the emulator
    offenders = []
    for path in _python_files():
        if path in (store, testing):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in TABLE_CALLS
                and "dynamodb" in ast.unparse(node.func.value).lower()
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def _store_methods_used_by_the_lambdas() -> set[str]:
    sources = [
        ROOT / "shepard" / "joblayer" / "service.py",
        *sorted((ROOT / "lambdas").rglob("*.py")),
    ]
    used: set[str] = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and ast.unparse(node.func.value).endswith("store")
            ):
                used.add(node.func.attr)
    return used


def test_the_lambda_store_calls_exactly_the_actions_of_the_contract() -> None:
    """TABLE_ACTIONS_LAMBDA (what the Lambda role allows) is what the Lambdas' JobStore calls."""
    tree = ast.parse((ROOT / "shepard" / "joblayer" / "store.py").read_text(encoding="utf-8"))
    [store] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "JobStore"]
    methods = {m.name: m for m in store.body if isinstance(m, ast.FunctionDef)}
    todo = sorted(_store_methods_used_by_the_lambdas())
    assert {"create", "put_many", "delete_unsubmitted", "get"} <= set(todo)
    seen: set[str] = set()
    called: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for call in ast.walk(methods[name]):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
                owner = ast.unparse(call.func.value)
                if owner == "self.client":
                    called.add(call.func.attr)
                elif owner == "self" and call.func.attr in methods:
                    todo.append(call.func.attr)
    actions = {"dynamodb:" + "".join(part.title() for part in name.split("_")) for name in called}
    assert actions == set(contract.TABLE_ACTIONS_LAMBDA)
