"""botocore failures rewritten once into `while <doing X>: <cause>. <what to do>.`, exit codes."""

from __future__ import annotations

import pytest
from botocore import exceptions as bx

from shepard.aws.errors import aws_errors
from shepard.errors import ExitStatus, ShepardError


def _client_error(code: str, message: str = "nope") -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": code, "Message": message}}, "GetItem")


@pytest.mark.parametrize(
    ("error", "status", "words"),
    [
        (bx.NoCredentialsError(), ExitStatus.FAILURE, ["no AWS credentials", "aws configure"]),
        (_client_error("ExpiredTokenException"), ExitStatus.FAILURE, ["have expired", "set_role"]),
        (_client_error("InvalidClientTokenId"), ExitStatus.FAILURE, ["does not accept"]),
        (_client_error("AccessDeniedException"), ExitStatus.BACKEND, ["access denied"]),
        (_client_error("ResourceNotFoundException", "no table"), ExitStatus.BACKEND,
         ["ResourceNotFoundException: no table"]),
        (bx.UnauthorizedSSOTokenError(), ExitStatus.FAILURE, ["aws sso login"]),
        (bx.ProfileNotFound(profile="dev"), ExitStatus.FAILURE, ["list-profiles"]),
        (bx.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), ExitStatus.BACKEND,
         ["cannot reach http://127.0.0.1:1", "shepard-tf local status"]),
    ],
)  # fmt: skip
def test_each_failure_names_the_action_the_cause_and_the_fix(
    error: Exception, status: ExitStatus, words: list[str]
) -> None:
    with pytest.raises(ShepardError) as info, aws_errors("querying the job table"):
        raise error
    assert info.value.exit_status == status
    assert info.value.message.startswith("while querying the job table: ")
    for word in words:
        assert word in info.value.message
