"""The local flock: the whole product on this machine, with no AWS account.

An emulator (moto's server) on 127.0.0.1 gets the same ``terraform/flock``; a dispatcher runs the
same Lambda handlers; an executor runs the same worker for every submitted job. See
docs/local-flock.md.
"""

from shepard.local.control import (
    LocalFlock,
    LocalStatus,
    ensure_running,
    ensure_running_with,
    logs,
    require_running,
    status,
    stop,
)

__all__ = [
    "LocalFlock",
    "LocalStatus",
    "ensure_running",
    "ensure_running_with",
    "logs",
    "require_running",
    "status",
    "stop",
]
