"""A worker started before its job: Python, boto3 and the worker's modules already loaded.

Starting ``python -m shepard_worker`` costs about a second of imports before the job is even
claimed. The executor keeps one of these spares per job slot; when a job arrives it writes one
JSON line (``env``, ``cwd``, ``log``) to the spare's stdin, and the spare becomes exactly
``python -m shepard_worker`` with that environment. An empty line (or EOF) ends it.
"""

from __future__ import annotations

import json
import os
import runpy
import sys


def main() -> int:
    import boto3  # noqa: F401  (the slow imports, done while waiting)
    import botocore.session  # noqa: F401
    import shepard_worker.run  # noqa: F401

    line = sys.stdin.readline()
    if not line.strip():
        return 0
    order = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(order["env"])
    os.chdir(order["cwd"])
    sys.argv = ["shepard_worker"]
    runpy.run_module("shepard_worker", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
