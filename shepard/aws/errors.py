"""botocore's exceptions, rewritten once into ``while <doing X>: <cause>. <what to do>.``"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shepard.errors import BackendError, ShepardError

CREDENTIAL_HELP = (
    "Configure credentials with `aws configure`, log in with `aws sso login` (with --profile for"
    " a named AWS profile), or assume a role with `shepard-tf set_role`"
)
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_BAD_KEYS = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"}


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Turn any botocore failure inside the block into a ShepardError about ``doing``."""
    from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
    from botocore import exceptions as bx

    try:
        yield
    except ShepardError:
        raise
    except bx.NoCredentialsError:
        raise ShepardError(
            f"while {doing}: no AWS credentials were found. {CREDENTIAL_HELP}."
        ) from None
    except (bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError, bx.TokenRetrievalError) as exc:
        raise ShepardError(
            f"while {doing}: the AWS SSO login has expired or is missing ({exc})."
            " Run `aws sso login` (with --profile for a named AWS profile)."
        ) from None
    except bx.ProfileNotFound as exc:
        raise ShepardError(
            f"while {doing}: {exc}. Check the name with `aws configure list-profiles`."
        ) from None
    except bx.NoRegionError:
        raise ShepardError(
            f"while {doing}: no AWS region is set. Pass --region, set shepard_region in the"
            " profile, or run `aws configure set region REGION`."
        ) from None
    except bx.EndpointConnectionError as exc:
        raise BackendError(
            f"while {doing}: cannot reach {exc.kwargs.get('endpoint_url', 'AWS')}. Check the"
            " network, or for a local flock that it is running (`shepard-tf local status`)."
        ) from None
    except bx.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", exc))
        if code in _EXPIRED:
            raise ShepardError(
                f"while {doing}: the AWS credentials have expired ({message})."
                f" Refresh them: {CREDENTIAL_HELP}."
            ) from None
        if code in _BAD_KEYS:
            raise ShepardError(
                f"while {doing}: AWS does not accept the credentials ({code}). {CREDENTIAL_HELP}."
            ) from None
        if code in _DENIED:
            raise BackendError(
                f"while {doing}: access denied ({message}). Use credentials or a role"
                " (`shepard-tf set_role`) allowed to do this."
            ) from None
        raise BackendError(f"while {doing}: AWS answered {code}: {message}.") from None
    except (S3UploadFailedError, S3TransferFailedError) as exc:
        raise BackendError(
            f"while {doing}: {exc}. Check the bucket name and that your credentials may write it."
        ) from None
    except bx.BotoCoreError as exc:
        raise BackendError(f"while {doing}: {exc}.") from None
