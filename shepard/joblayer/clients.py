"""Every boto3 client of shepard-tf, with one retry policy, and what their errors mean.

The CLI (``shepard.aws``), the worker, both Lambdas and the local flock make their clients here,
so a client retries the same way wherever it runs. :func:`explain` is the one wording of a
botocore failure (``while <doing X>: <cause>. <what to do>.``); the CLI and the worker raise
their own exception classes with it. boto3 alone: this module ships in the Lambda zips and the
worker image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.config import Config

# Standard mode: throttling and transient errors are retried with backoff and a retry quota,
# up to five retries after the first attempt; a connection that does not open in 10 s is an
# error, not a hang.
RETRY = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10)

# For a caller that retries a call itself, counted and tested (BatchSubmitter): one attempt.
CALLER_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


def client(
    service: str,
    *,
    session: Any = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    config: Config | None = None,
) -> Any:
    """A boto3 client of ``service``: RETRY, with ``config`` (if given) merged over it.

    ``session`` defaults to a new boto3 session (the standard credential chain and
    ``AWS_ENDPOINT_URL``); ``region`` and ``endpoint_url`` override the session's.
    """
    if session is None:
        import boto3

        session = boto3.session.Session()
    merged = RETRY if config is None else RETRY.merge(config)
    return session.client(service, region_name=region, endpoint_url=endpoint_url, config=merged)


# -- what an error means ------------------------------------------------------------------------

CREDENTIAL_HELP = (
    "Configure credentials with `aws configure`, log in with `aws sso login` (with --profile for"
    " a named AWS profile), or assume a role with `shepard-tf set_role`"
)
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_BAD_KEYS = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"}


@dataclass(frozen=True)
class Explained:
    """A botocore failure in words: ``caller_side`` when the caller's setup must change
    (credentials, profile, region), else AWS or the network refused or failed."""

    message: str
    caller_side: bool


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError (``""`` for anything else)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _sentence(doing: str, cause: str, fix: str | None) -> str:
    return f"while {doing}: {cause}." + (f" {fix}." if fix else "")


def explain(exc: BaseException, doing: str, fix: str | None = None) -> Explained | None:
    """What ``exc`` means while ``doing``; None when it is not a boto3/botocore failure.

    ``fix`` is what to do when the cause itself suggests nothing (an error code of the service).
    """
    from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
    from botocore import exceptions as bx

    if isinstance(exc, bx.NoCredentialsError):
        return Explained(_sentence(doing, "no AWS credentials were found", CREDENTIAL_HELP), True)
    if isinstance(
        exc, bx.SSOTokenLoadError | bx.UnauthorizedSSOTokenError | bx.TokenRetrievalError
    ):
        cause = f"the AWS SSO login has expired or is missing ({exc})"
        fix_sso = "Run `aws sso login` (with --profile for a named AWS profile)"
        return Explained(_sentence(doing, cause, fix_sso), True)
    if isinstance(exc, bx.ProfileNotFound):
        fix_profile = "Check the name with `aws configure list-profiles`"
        return Explained(_sentence(doing, str(exc), fix_profile), True)
    if isinstance(exc, bx.NoRegionError):
        fix_region = (
            "Pass --region, set shepard_region in the profile, or run"
            " `aws configure set region REGION`"
        )
        return Explained(_sentence(doing, "no AWS region is set", fix_region), True)
    if isinstance(exc, bx.EndpointConnectionError):
        where = exc.kwargs.get("endpoint_url", "AWS")
        fix_net = (
            "Check the network, or for a local flock that it is running (`shepard-tf local status`)"
        )
        return Explained(_sentence(doing, f"cannot reach {where}", fix_net), False)
    if isinstance(exc, bx.ClientError):
        return _client_error(exc, doing, fix)
    if isinstance(exc, S3UploadFailedError | S3TransferFailedError):
        fix_s3 = fix or "Check the bucket name and that your credentials may write it"
        return Explained(_sentence(doing, str(exc), fix_s3), False)
    if isinstance(exc, bx.BotoCoreError):
        return Explained(_sentence(doing, str(exc), fix), False)
    return None


def _client_error(exc: Any, doing: str, fix: str | None) -> Explained:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", exc))
    if code in _EXPIRED:
        cause = f"the AWS credentials have expired ({message})"
        return Explained(_sentence(doing, cause, f"Refresh them: {CREDENTIAL_HELP}"), True)
    if code in _BAD_KEYS:
        cause = f"AWS does not accept the credentials ({code})"
        return Explained(_sentence(doing, cause, CREDENTIAL_HELP), True)
    if code in _DENIED:
        fix_denied = fix or "Use credentials or a role (`shepard-tf set_role`) allowed to do this"
        return Explained(_sentence(doing, f"access denied ({message})", fix_denied), False)
    return Explained(_sentence(doing, f"AWS answered {code}: {message}", fix), False)
