"""How long `shepard-tf apply` of the testing-setup flock (examples/testing-setup, what `make demo`
deploys) takes on a fresh local flock, and where the time goes.

    python bench/bench_local_apply.py                  # today's settings, then the variant
    python bench/bench_local_apply.py --parallelism 40 # the variant: Terraform's -parallelism

Both applies run in this one run, one after the other, each into a fresh temporary state folder
(after a warm-up apply that builds the flock's images, which the measured ones then find)
(a local flock's destroy is stopping its service). The variant is the same flock applied with
``TF_CLI_ARGS_apply=-parallelism=N``: what is applied does not change. For each it prints the
wall time of the whole command, Terraform's own apply time, and the resources that took longest
(nearly all of it is the AWS provider waiting, not the emulator working: see bench/README.md),
then the ratio of the variant to today's.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "examples" / "testing-setup"
CREATED = re.compile(r"\] (?P<address>\S+): created \((?P<seconds>\d+)s\)")
DONE = re.compile(r"done in (?:(?P<m>\d+)m)?(?P<s>\d+)s")


@dataclass
class ApplyTiming:
    label: str
    seconds: float  # the whole `shepard-tf apply` (service start, init, plan, apply, outputs)
    terraform_seconds: float | None  # Terraform's apply, as its progress says
    slowest: list[tuple[str, int]] = field(default_factory=list)
    failed: str | None = None


def timed_apply(label: str, extra_env: dict[str, str]) -> ApplyTiming:
    """Apply a fresh copy of the testing setup with ``shepard-tf``; stop its service after."""
    import shepard.local

    with tempfile.TemporaryDirectory(prefix="shepard-apply-bench-") as tmp:
        folder = Path(tmp) / "testing-setup"
        shutil.copytree(SETUP, folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_CLI_ARGS"))}
        env |= {
            "SHEPARD_STATE_DIR": f"{tmp}/state",
            "SHEPARD_CONFIG_DIR": f"{tmp}/profiles",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            **extra_env,
        }
        command = [str(Path(sys.executable).with_name("shepard-tf")), "apply", "flock.yaml"]
        started = time.monotonic()
        try:
            done_run = subprocess.run(
                [*command, "--auto-approve"],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            seconds = time.monotonic() - started
            for service in Path(tmp).glob("**/local/service.json"):
                shepard.local.stop(service.parent.parent)
    text = done_run.stdout + done_run.stderr
    done = DONE.search(text)
    terraform = int(done.group("m") or 0) * 60 + int(done.group("s")) if done else None
    slowest = sorted(
        ((m.group("address"), int(m.group("seconds"))) for m in CREATED.finditer(text)),
        key=lambda pair: -pair[1],
    )[:6]
    failed = None
    if done_run.returncode != 0:
        failed = f"exit status {done_run.returncode}; output ends: {text[-1500:]}"
    return ApplyTiming(label, seconds, terraform, slowest, failed=failed)


def report(results: list[ApplyTiming], out: io.TextIOBase | None = None) -> None:
    stream = out or sys.stdout
    print("local flock apply: examples/testing-setup on a fresh local flock", file=stream)
    for result in results:
        if result.failed:
            print(f"  {result.label}: FAILED ({result.failed})", file=stream)
            continue
        print(
            f"  {result.label}: {result.seconds:.1f} s in all, Terraform's apply "
            f"{result.terraform_seconds} s; slowest: "
            + ", ".join(f"{address.split('.', 1)[-1]} {s}s" for address, s in result.slowest),
            file=stream,
        )
    if len(results) == 2 and not any(r.failed for r in results):
        today, variant = results
        print(
            f"  ratio: {today.seconds / variant.seconds:.2f}x (today's / the variant's time; "
            "target: the variant under 30 s)",
            file=stream,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parallelism", type=int, default=40, help="the variant's -parallelism")
    parser.add_argument(
        "--no-warm-up",
        action="store_true",
        help="skip the first apply that builds and pushes the flock's images (then the first "
        "measured apply pays for them when a Docker engine answers)",
    )
    args = parser.parse_args(argv)
    sys.path[:0] = [str(REPO), str(REPO / "worker")]
    if not args.no_warm_up:
        timed_apply("warm-up", {})  # images built once, so both measured applies find them
    results = [
        timed_apply("today's settings", {}),
        timed_apply(
            f"-parallelism={args.parallelism}",
            {"TF_CLI_ARGS_apply": f"-parallelism={args.parallelism}"},
        ),
    ]
    report(results)
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
