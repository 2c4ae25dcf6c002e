"""Credentials and sessions: the only place the CLI builds a boto3 session.

The standard boto3 chain (environment, shared config and SSO profiles, instance role) is used as
it is, with ``--aws_profile`` and ``--region`` on top. A role assumed with ``set_role`` is cached
in the config folder (mode 0600) until it expires, and every command then uses it. A local
flock's profile carries ``shepard_endpoint_url`` (and ``shepard_lambda_endpoint_url``) which point
the clients at the emulator and the local invoke server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shepard.emulator import EMULATOR_CREDENTIALS, is_loopback_url
from shepard.errors import BackendError, BadInput, ShepardError

ROLE_CACHE = "role_credentials.json"


@dataclass(frozen=True)
class RoleCredentials:
    """Temporary credentials of an assumed role, as cached by ``set_role``."""

    account: str
    role: str
    role_arn: str
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: str  # ISO-8601 UTC

    @property
    def expires_at(self) -> datetime:
        return datetime.fromisoformat(self.expiration)

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n"


def role_cache_path(config_dir: Path) -> Path:
    return config_dir / ROLE_CACHE


def load_role(config_dir: Path) -> RoleCredentials | None:
    path = role_cache_path(config_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RoleCredentials(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise BadInput(
            f"while reading the cached role: {path} is damaged ({exc})."
            " Run `shepard-tf release_role` and `shepard-tf set_role` again."
        ) from None


def active_role(config_dir: Path, now: datetime | None = None) -> RoleCredentials | None:
    """The role set by ``set_role``; an error once it has expired (never a silent fallback to
    other credentials, which could reach another account)."""
    cached = load_role(config_dir)
    if cached is not None and cached.expired(now):
        raise ShepardError(
            f"while using the role set by set_role: the credentials for {cached.role_arn}"
            f" expired at {cached.expiration}. Run `shepard-tf set_role` again, or"
            " `shepard-tf release_role` to use your own credentials."
        )
    return cached


def save_role(config_dir: Path, role: RoleCredentials) -> Path:
    from shepard.profiles import _write_private

    path = role_cache_path(config_dir)
    _write_private(path, role.to_json())
    return path


def release_role(config_dir: Path) -> bool:
    path = role_cache_path(config_dir)
    if path.exists():
        path.unlink()
        return True
    return False


@dataclass(frozen=True)
class AwsSettings:
    """Everything that decides which account, region and endpoint the clients reach."""

    config_dir: Path
    env: Mapping[str, str]
    region: str | None = None
    aws_profile: str | None = None
    endpoint_url: str | None = None
    lambda_endpoint_url: str | None = None
    # Per-command role assumption (the seed's flags); ``set_role``'s cache wins when present.
    role_arn: str | None = None
    mfa_serial: str | None = None
    mfa_token: str | None = None


def role_arn(account: str | None, role: str) -> str:
    """``role`` as given if it is an ARN, else the ARN of role ``role`` in ``account``."""
    if role.startswith("arn:"):
        return role
    if not account:
        raise BadInput(
            f"while assuming role {role!r}: no account number is known."
            " Pass --account_number (or --shepard_account_number), or give the role's full ARN."
        )
    if not (account.isdigit() and len(account) == 12):
        raise BadInput(
            f"while assuming role {role!r}: account number {account!r} must be 12 digits."
            " Pass the account's number."
        )
    return f"arn:aws:iam::{account}:role/{role}"


def _from_env(env: Mapping[str, str], key: str) -> str | None:
    value = env.get(key)
    return value or None


def base_session(settings: AwsSettings) -> Any:
    """A boto3 session from the standard chain, with the explicit environment given to main()."""
    import boto3

    env = settings.env
    region = settings.region or _from_env(env, "AWS_REGION") or _from_env(env, "AWS_DEFAULT_REGION")
    kwargs: dict[str, Any] = {"region_name": region}
    if settings.aws_profile:
        kwargs["profile_name"] = settings.aws_profile
    elif is_loopback_url(settings.endpoint_url):
        # A local flock's emulator: it takes any key, and a newcomer has none. Real keys are
        # never needed there, so none are looked up (or sent).
        kwargs.update(
            aws_access_key_id=EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
    elif env is not os.environ and _from_env(env, "AWS_ACCESS_KEY_ID"):
        # main(env=...) in tests and embedding: take keys from that mapping, not os.environ.
        kwargs["aws_access_key_id"] = env["AWS_ACCESS_KEY_ID"]
        kwargs["aws_secret_access_key"] = env.get("AWS_SECRET_ACCESS_KEY", "")
        kwargs["aws_session_token"] = _from_env(env, "AWS_SESSION_TOKEN")
    elif env is not os.environ and _from_env(env, "AWS_PROFILE"):
        kwargs["profile_name"] = env["AWS_PROFILE"]
    try:
        return boto3.Session(**kwargs)
    except Exception as exc:  # botocore's ProfileNotFound and friends
        raise BadInput(
            f"while loading AWS credentials: {exc}. Check the AWS profile name"
            " (`aws configure list-profiles`) or drop --aws_profile."
        ) from None


def session(settings: AwsSettings, *, now: datetime | None = None) -> Any:
    """The session every command uses: cached role > per-command role > the standard chain."""
    import boto3

    cached = active_role(settings.config_dir, now)
    base = base_session(settings)
    if cached is not None:
        return boto3.Session(
            aws_access_key_id=cached.access_key_id,
            aws_secret_access_key=cached.secret_access_key,
            aws_session_token=cached.session_token,
            region_name=base.region_name,
        )
    if settings.role_arn:
        creds = assume(settings, base, settings.role_arn)
        return boto3.Session(
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            aws_session_token=creds.session_token,
            region_name=base.region_name,
        )
    return base


def endpoint_for(settings: AwsSettings, service: str) -> str | None:
    if service == "lambda" and settings.lambda_endpoint_url:
        return settings.lambda_endpoint_url
    if settings.endpoint_url:
        return settings.endpoint_url
    env = settings.env
    if env is not os.environ:
        service_key = f"AWS_ENDPOINT_URL_{service.upper()}"
        return _from_env(env, service_key) or _from_env(env, "AWS_ENDPOINT_URL")
    return None  # boto3 reads AWS_ENDPOINT_URL(_<SERVICE>) from os.environ itself


def client(session_: Any, settings: AwsSettings, service: str) -> Any:
    from shepard.joblayer import clients

    if session_.region_name is None:
        raise BadInput(
            f"while connecting to AWS {service}: no region is set. Pass --region, set"
            " shepard_region in the profile, or run `aws configure set region REGION`."
        )
    return clients.client(service, session=session_, endpoint_url=endpoint_for(settings, service))


def assume(
    settings: AwsSettings,
    base: Any,
    arn: str,
    *,
    duration_seconds: int = 3600,
) -> RoleCredentials:
    """AssumeRole (with MFA when a serial number and token are given)."""
    from shepard.aws.errors import aws_errors

    kwargs: dict[str, Any] = {
        "RoleArn": arn,
        "RoleSessionName": "shepard-tf",
        "DurationSeconds": duration_seconds,
    }
    if settings.mfa_serial or settings.mfa_token:
        if not (settings.mfa_serial and settings.mfa_token):
            raise BadInput(
                "while assuming a role with MFA: both --serial_number (the MFA device ARN) and"
                " --mfa_token (the 6-digit code) are needed. Pass both, or neither."
            )
        kwargs["SerialNumber"] = settings.mfa_serial
        kwargs["TokenCode"] = settings.mfa_token
    with aws_errors(f"assuming role {arn}"):
        sts = client(base, settings, "sts")
        answer = sts.assume_role(**kwargs)
    creds = answer["Credentials"]
    expiration = creds["Expiration"]
    if isinstance(expiration, datetime):
        expiration_text = expiration.astimezone(UTC).isoformat()
    else:
        expiration_text = str(expiration)
    parts = arn.split(":")
    account = parts[4] if len(parts) > 4 else ""
    return RoleCredentials(
        account=account,
        role=arn.rsplit("/", 1)[-1],
        role_arn=arn,
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
        expiration=expiration_text,
    )


__all__ = [
    "AwsSettings",
    "BackendError",
    "RoleCredentials",
    "assume",
    "client",
    "load_role",
    "release_role",
    "role_arn",
    "save_role",
    "session",
]
