"""A flock's apply or destroy in a process of its own (tests/support/background.py starts it).

``deploy-apply FLOCK_YAML RESULT_JSON`` and ``deploy-destroy FLOCK_YAML [REAPPLIED_JSON]`` (a
re-apply and a plan first, their results in REAPPLIED_JSON) go through shepard.deploy, as the
CLI does (it installs signal handlers, which only a main thread may);
``cli-apply FLOCK_YAML`` is ``shepard-tf apply FLOCK_YAML --auto-approve`` (a local flock's
service outlives it); ``terraform-apply ROOT OUTPUTS_JSON`` and ``terraform-destroy ROOT`` run
plain Terraform in a
prepared root module; ``call MODULE:FUNCTION [ARG...]`` calls a test module's function with the
string arguments (the e2e demo's whole run, for one). The environment points at the flock's
emulator. Progress goes to stdout (the run's log); the exit status says whether it worked.

With ``SHEPARD_IAM_SUBPROCESS=1`` and ``SHEPARD_IAM_RECORD_DIR`` set (background.py sets them),
the AWS calls of the CLI commands run here are recorded for the session's IAM check, as they
are when a test runs the CLI in process (tests/support/iam_record.py).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

# A connection the emulator dropped under load (seen on 2 cores with two applies and the tests
# running): Terraform converges, so the same apply run again finishes the work.
DROPPED = re.compile(r"use of closed network connection|connection reset by peer|: EOF\b")


def _terraform(root: Path, *args: str) -> str:
    command = ["terraform", f"-chdir={root}", *args]
    done = subprocess.run(command, env=os.environ, capture_output=True, text=True, check=False)
    if done.returncode != 0 and args[0] == "apply" and DROPPED.search(done.stderr):
        sys.stdout.write(done.stderr)
        sys.stdout.write("the emulator dropped a connection; applying again\n")
        done = subprocess.run(command, env=os.environ, capture_output=True, text=True, check=False)
    sys.stdout.write(done.stdout[-20000:] if args[0] != "output" else "")
    sys.stdout.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"terraform {args[0]} failed ({done.returncode})")
    return done.stdout


def _reapply(flock_file: Path) -> dict[str, object]:
    """``deploy.apply`` of the applied flock again, then ``deploy.plan``: what a user who
    re-applies an unchanged flock gets (tests/integration/test_deploy.py reads it)."""
    from dataclasses import asdict

    from shepard import deploy

    started = time.monotonic()
    try:
        outputs = deploy.apply(
            flock_file, env=dict(os.environ), auto_approve=True, progress=sys.stdout
        )
        seconds = time.monotonic() - started
        after = deploy.plan(flock_file, env=dict(os.environ))
    except Exception as error:  # the test reports it; the destroy still runs
        return {"error": f"{type(error).__name__}: {error}"}
    return {"outputs": outputs, "seconds": seconds, "plan_after": asdict(after)}


def main(argv: list[str]) -> int:
    command, *rest = argv
    started = time.monotonic()
    if os.environ.get("SHEPARD_IAM_SUBPROCESS") == "1" and os.environ.get("SHEPARD_IAM_RECORD_DIR"):
        from tests.support import iam_record

        iam_record.install()
    if command == "deploy-apply":
        from shepard import deploy

        flock_file, result = Path(rest[0]), Path(rest[1])
        timings = deploy.Timings()
        outputs = deploy.apply(
            flock_file, env=dict(os.environ), auto_approve=True, progress=sys.stdout,
            timings=timings,
        )  # fmt: skip
        seconds = time.monotonic() - started
        result.write_text(
            json.dumps({"outputs": outputs, "timings": dict(timings.seconds), "seconds": seconds})
        )
    elif command == "deploy-destroy":
        from shepard import deploy

        flock_file = Path(rest[0])
        if len(rest) > 1:  # first re-apply it unchanged, and plan once more
            result = Path(rest[1])
            partial = result.with_suffix(".partial")
            partial.write_text(json.dumps(_reapply(flock_file)))
            partial.rename(result)  # whole or absent for whoever waits for it
        deploy.destroy(flock_file, env=dict(os.environ), auto_approve=True, progress=sys.stdout)
    elif command == "cli-apply":
        from shepard.cli import main as cli

        code = cli(["apply", rest[0], "--auto-approve"], dict(os.environ))
        if code != 0:
            raise SystemExit(f"shepard-tf apply exited with {code}")
    elif command == "call":
        module, _, name = rest[0].partition(":")
        getattr(importlib.import_module(module), name)(*rest[1:])
    elif command == "terraform-apply":
        root, result = Path(rest[0]), Path(rest[1])
        _terraform(root, "init", "-input=false", "-no-color")
        _terraform(root, "apply", "-auto-approve", "-input=false", "-no-color")
        result.write_text(_terraform(root, "output", "-json"))
    elif command == "terraform-destroy":
        _terraform(Path(rest[0]), "destroy", "-auto-approve", "-input=false", "-no-color")
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(f"{command}: {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
