"""secretify (and what the worker rebuilds from it), set_role/check_role/release_role (STS)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from shepard_worker.aws import Aws as WorkerAws
from shepard_worker.fetch import rebuild_secrets

from shepard.aws.session import load_role, role_cache_path, save_role
from shepard.emulator import InProcessEmulator
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.testing import create_job_table
from tests.unit.cli.helpers import cli_env, recording_proxy, run, write_flock_profile

pytestmark = pytest.mark.integration


@pytest.fixture
def flock(aws: InProcessEmulator) -> FlockSettings:
    """Only what these commands touch: the job table (query) and the profile's names."""
    create_job_table(boto3.client("dynamodb"), "clisec-jobs")
    return FlockSettings(
        flock="clisec",
        table_name="clisec-jobs",
        job_queue="q",
        job_definition="d",
        inputs_bucket="clisec-inputs",
        outputs_bucket="clisec-outputs",
        errors_bucket="clisec-errors",
        quick_deploy_bucket="clisec-quick-deploy",
    )


@pytest.fixture
def env(flock: FlockSettings, tmp_path: Path) -> dict[str, str]:
    env = cli_env(tmp_path / "config")
    write_flock_profile(env, flock)
    return env


def _rebuilt(secret: str, target: Path) -> dict[str, bytes]:
    rebuild_secrets(WorkerAws(), secret, target)
    return {p.name: p.read_bytes() for p in target.iterdir()}


def test_secretify_stores_base64_files_the_worker_rebuilds(
    env: dict[str, str], flock: FlockSettings, tmp_path: Path
) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    files = {"token.txt": b"s3cr3t-value", "key.bin": bytes(range(256))}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "sub").mkdir()
    result = run(["secretify", "--path_to_local_secrets", str(folder)], env)
    assert result.code == 0, result.err
    assert "stored 2 file(s)" in result.out and "sub" in result.err
    assert "s3cr3t" not in result.out + result.err  # values are never printed
    secret = f"{flock.flock}-secrets"
    stored = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
    )
    assert set(stored) == set(files)
    assert _rebuilt(secret, tmp_path / "rebuilt") == files
    # Running again replaces the secret's value (a new version), no error.
    (folder / "token.txt").write_bytes(b"rotated")
    assert run(["secretify", "--path-to-local-secrets", str(folder)], env).code == 0
    assert _rebuilt(secret, tmp_path / "rebuilt2")["token.txt"] == b"rotated"


def test_secretify_splits_over_64_kib_into_parts(
    env: dict[str, str], flock: FlockSettings, tmp_path: Path
) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    files = {f"cert{i}.pem": os.urandom(30_000) for i in range(4)}  # ~160 KB as base64
    for name, data in files.items():
        (folder / name).write_bytes(data)
    result = run(["secretify", "--path_to_local_secrets", str(folder)], env)
    assert result.code == 0, result.err
    secret = f"{flock.flock}-secrets"
    sm = boto3.client("secretsmanager")
    main = json.loads(sm.get_secret_value(SecretId=secret)["SecretString"])
    parts = main["__shepard_parts__"]
    assert len(parts) >= 3 and all(p.startswith(f"{secret}-part-") for p in parts)
    for part in parts:
        assert len(sm.get_secret_value(SecretId=part)["SecretString"]) <= 64 * 1024
    assert _rebuilt(secret, tmp_path / "rebuilt") == files


def test_secretify_parts_take_the_flock_key_and_tags_destroy_finds(
    env: dict[str, str], flock: FlockSettings, tmp_path: Path
) -> None:
    # The flock's secret as terraform/modules/secrets makes it: the flock key, the flock's tags.
    key = boto3.client("kms").create_key(Description="flock key")["KeyMetadata"]["Arn"]
    sm = boto3.client("secretsmanager")
    secret = f"{flock.flock}-secrets"
    sm.create_secret(
        Name=secret,
        KmsKeyId=key,
        SecretString="{}",
        Tags=[{"Key": "shepard:flock", "Value": flock.flock}, {"Key": "team", "Value": "lab"}],
    )
    # A part left by an earlier, larger secretify: it gets the tags too.
    sm.create_secret(Name=f"{secret}-part-3", SecretString="{}")
    folder = tmp_path / "secrets"
    folder.mkdir()
    for i in range(4):
        (folder / f"cert{i}.pem").write_bytes(os.urandom(30_000))

    result = run(["secretify", "--path_to_local_secrets", str(folder)], env)

    assert result.code == 0, result.err
    parts = json.loads(sm.get_secret_value(SecretId=secret)["SecretString"])["__shepard_parts__"]
    assert len(parts) >= 3
    expected_tags = {"shepard:flock": flock.flock, "team": "lab", "shepard:secret": secret}
    for part in parts:
        described = sm.describe_secret(SecretId=part)
        tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
        assert tags == expected_tags, part
        if part != f"{secret}-part-3":
            assert described.get("KmsKeyId") == key, part
    # What destroy looks for: every part, by the tag naming the flock's secret.
    tagged = sm.list_secrets(Filters=[{"Key": "tag-value", "Values": [secret]}])["SecretList"]
    assert {s["Name"] for s in tagged} == set(parts)
    # The main secret keeps its key and its own tags (no shepard:secret on it).
    main = sm.describe_secret(SecretId=secret)
    assert main["KmsKeyId"] == key
    assert "shepard:secret" not in {t["Key"] for t in main["Tags"]}
    assert _rebuilt(secret, tmp_path / "rebuilt") == {
        p.name: p.read_bytes() for p in folder.iterdir()
    }


def test_secretify_refuses_a_file_no_secret_can_hold(
    env: dict[str, str], flock: FlockSettings, tmp_path: Path
) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "huge.bin").write_bytes(os.urandom(60_000))
    result = run(["secretify", "--path_to_local_secrets", str(folder)], env)
    assert result.code == 2 and "huge.bin" in result.err and "quick-deploy" in result.err
    names = [s["Name"] for s in boto3.client("secretsmanager").list_secrets()["SecretList"]]
    assert names == []


# -- roles ------------------------------------------------------------------------------------


def test_set_role_caches_credentials_every_command_uses(env: dict[str, str]) -> None:
    result = run(
        [
            "set_role",
            "--role_to_assume_to_target_account",
            "FlockAdmin",
            "--shepard_account_number",
            "123456789012",
            "--serial_number",
            "arn:aws:iam::123456789012:mfa/me",
            "--mfa_token",
            "123456",
        ],
        env,
    )
    assert result.code == 0, result.err
    config = Path(env["SHEPARD_CONFIG_DIR"])
    cache = role_cache_path(config)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    role = load_role(config)
    assert role is not None and role.role_arn == "arn:aws:iam::123456789012:role/FlockAdmin"
    assert role.session_token and role.access_key_id not in result.out
    shown = json.loads(run(["check_role", "--json"], env).out)
    assert shown["account"] == "123456789012" and shown["role"] == "FlockAdmin"
    assert shown["expired"] is False
    assert "FlockAdmin" in run(["check_role"], env).out
    # Commands now use the role's credentials: STS says who we are with them.
    from shepard.aws.flock import Aws
    from shepard.aws.session import AwsSettings

    identity = Aws(AwsSettings(config_dir=config, env=env)).caller_identity()
    assert "assumed-role/FlockAdmin" in identity["arn"]
    assert run(["query"], env).code == 0
    assert run(["release_role"], env).code == 0
    assert not cache.exists()
    assert "no role is set" in run(["check_role"], env).out


def test_expired_role_says_so_and_how_to_fix(env: dict[str, str]) -> None:
    from shepard.aws.session import RoleCredentials

    config = Path(env["SHEPARD_CONFIG_DIR"])
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    save_role(
        config,
        RoleCredentials(
            "123456789012", "R", "arn:aws:iam::123456789012:role/R", "AK", "SK", "ST", past
        ),
    )
    result = run(["query"], env)
    assert result.code == 1
    assert "expired" in result.err and "set_role" in result.err and "release_role" in result.err
    assert run(["check_role"], env).code == 1


def test_role_input_errors(env: dict[str, str]) -> None:
    result = run(["set_role", "--role_to_assume_to_target_account", "R"], env)
    assert result.code == 2 and "account number" in result.err
    result = run(
        [
            "set_role",
            "--role_to_assume_to_target_account",
            "arn:aws:iam::123456789012:role/R",
            "--mfa_token",
            "123456",
        ],
        env,
    )
    assert result.code == 2 and "--serial_number" in result.err
    no_profile = {**env, "SHEPARD_CONFIG_DIR": env["SHEPARD_CONFIG_DIR"] + "-empty"}
    result = run(["query", "--dont_assume", "False", "--dynamo_db_to_query", "t"], no_profile)
    assert result.code == 2 and "needs a role" in result.err


def test_missing_credentials_message(tmp_path: Path, flock: FlockSettings) -> None:
    env = {
        "SHEPARD_CONFIG_DIR": str(tmp_path / "c"),
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
    }
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
    try:
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        result = run(["query", "--dynamo_db_to_query", flock.table_name], env)
    finally:
        for key in [k for k in os.environ if k.startswith("AWS_")]:
            del os.environ[key]
        os.environ.update(saved)
    assert result.code == 1
    assert "no AWS credentials were found" in result.err
    assert "aws configure" in result.err and "aws sso login" in result.err


def test_aws_profile_flag_picks_shared_credentials(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[flockdev]\naws_access_key_id = AKIAFLOCKDEV0000\naws_secret_access_key = x\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    with recording_proxy(env["AWS_ENDPOINT_URL"]) as proxy:
        result = run(["query", "--aws_profile", "flockdev"], {**env, "AWS_ENDPOINT_URL": proxy.url})
    assert result.code == 0, result.err
    assert proxy.requests and {r.access_key for r in proxy.requests} == {"AKIAFLOCKDEV0000"}
    result = run(["query", "--aws-profile", "nope"], env)
    assert result.code == 2 and "nope" in result.err and "list-profiles" in result.err
