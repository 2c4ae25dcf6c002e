"""botocore's exceptions, rewritten once into ``while <doing X>: <cause>. <what to do>.``

The wording is :func:`shepard.joblayer.clients.explain`, shared with the worker; here it becomes
a ShepardError (the caller's setup) or a BackendError (AWS refused or failed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shepard.errors import BackendError, ShepardError
from shepard.joblayer.clients import CREDENTIAL_HELP, explain

__all__ = ["CREDENTIAL_HELP", "aws_errors"]


@contextmanager
def aws_errors(doing: str, fix: str | None = None) -> Iterator[None]:
    """Turn any boto3/botocore failure inside the block into a ShepardError about ``doing``."""
    try:
        yield
    except ShepardError:
        raise
    except Exception as exc:
        explained = explain(exc, doing, fix)
        if explained is None:
            raise
        error = ShepardError if explained.caller_side else BackendError
        raise error(explained.message) from None
