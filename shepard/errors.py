"""The one exception family of shepard-tf.

Every error a user can cause or meet is raised as a :class:`ShepardError` whose message reads
``while <doing X>: <cause>. <what to do>.`` and carries the exit status ``main()`` returns.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    FAILURE = 1
    BAD_INPUT = 2
    BACKEND = 3  # AWS or Terraform said no
    INTERRUPTED = 130


class ShepardError(Exception):
    """An error with a message fit to print as it is, and an exit status."""

    exit_status: ExitStatus = ExitStatus.FAILURE

    def __init__(self, message: str, *, exit_status: ExitStatus | None = None) -> None:
        super().__init__(message)
        if exit_status is not None:
            self.exit_status = exit_status

    @property
    def message(self) -> str:
        return str(self.args[0])


class BadInput(ShepardError):
    """The user's input (flock.yaml, inputs.json, a flag) is wrong."""

    exit_status = ExitStatus.BAD_INPUT


class BackendError(ShepardError):
    """AWS, the emulator or Terraform refused or failed."""

    exit_status = ExitStatus.BACKEND
