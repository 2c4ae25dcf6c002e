"""``make demo`` (``python examples/demo.py``): the seed's Hello World on a local flock, as a
short guided tour.

It deploys ``examples/testing-setup`` to this machine (an AWS emulator on 127.0.0.1, no AWS
account), stores ``test_secrets`` as the flock's secret, runs the Hello World's two API jobs (one
fails on purpose, one succeeds), drops the ``tag_no_error`` payload as a zip, watches the jobs,
shows ``query``, retrieves the results, lists the output zips and the failed job's error zip, and
destroys the flock. Every step is a real ``shepard-tf`` command, run in this process.

Jobs run in Docker containers when a Docker engine answers (and has the offline base image), as
processes otherwise; the first line after the introduction says which. ``--runner process`` (or
``SHEPARD_DEMO_RUNNER=process``) runs processes even when an engine answers, ``--runner docker``
demands containers; either writes a copy of the flock file with ``local.runner`` set, beside the
results.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import sys
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shepard.errors import BadInput, ExitStatus, ShepardError

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "examples" / "testing-setup"
FAILING_PAYLOAD = {"an_example_variable_name": "an_example_variable_value"}
SUCCEEDING_PAYLOAD = {"test1": "test1", "test2": "test2", "test3": "test3", "test4": "0"}
FINISHED = "finished"
RUNNER_VARIABLE = "SHEPARD_DEMO_RUNNER"
RUNNERS = ("auto", "docker", "process")


@dataclass
class DemoJob:
    """One job of the tour and what became of it."""

    label: str
    how: str  # "batch_via_api" or "batch"
    job_id: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    result_zips: list[Path] = field(default_factory=list)
    error_zip: Path | None = None
    drop_to_running_seconds: float | None = None


@dataclass
class DemoResult:
    """What a run of the tour produced (the e2e test reads it)."""

    flock_file: Path
    state_dir: Path
    results_dir: Path
    jobs: list[DemoJob]
    service_pid: int | None = None
    service_ports: list[int] = field(default_factory=list)
    destroyed: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # the environment its commands ran with
    extra: dict[str, Any] = field(default_factory=dict)  # for callers that do more with the flock


class Tour:
    """Runs shepard-tf commands in process, saying what each one does first."""

    def __init__(self, env: Mapping[str, str], out: Any = None) -> None:
        self.env = dict(env)
        self.out = out if out is not None else sys.stdout
        self.step = 0

    def say(self, text: str) -> None:
        self.step += 1
        print(f"\n{self.step}. {text}", file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(f"   {text}", file=self.out, flush=True)

    def run(self, *args: str, capture: bool = False) -> str:
        """``shepard-tf ARGS``; raises ShepardError naming the command when it fails."""
        from shepard.cli import main as cli_main

        shown = " ".join(shlex.quote(a) for a in args)
        print(f"   $ shepard-tf {shown}", file=self.out, flush=True)
        buffer = io.StringIO() if capture else None
        status = cli_main(list(args), self.env, stdout=buffer or self.out, stderr=self.out)
        if status != ExitStatus.OK:
            raise ShepardError(
                f"while running the demo: `shepard-tf {shown}` exited {status}. Its message is "
                f"above; fix that and run `make demo` again."
            )
        return buffer.getvalue() if buffer is not None else ""

    def run_json(self, *args: str) -> Any:
        text = self.run(*args, capture=True)
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ShepardError(
                f"while running the demo: `shepard-tf {' '.join(args)}` printed {text[:200]!r}, "
                f"not JSON. Report this as a bug."
            ) from None


def _job_id_of(answer: Any) -> str:
    if isinstance(answer, dict):
        for key in ("job_id", "UUID", "uuid", "id"):
            if answer.get(key):
                return str(answer[key])
    raise ShepardError(f"while running the demo: the API answered {answer!r}, not a job id.")


def _records(tour: Tour) -> dict[str, dict[str, Any]]:
    return {str(r.get("UUID")): r for r in _quiet_query(tour)}


def _quiet_query(tour: Tour) -> list[dict[str, Any]]:
    from shepard.cli import main as cli_main

    buffer = io.StringIO()
    status = cli_main(["query", "--json"], tour.env, stdout=buffer, stderr=io.StringIO())
    if status != ExitStatus.OK:
        return []
    try:
        parsed = json.loads(buffer.getvalue())
    except json.JSONDecodeError:
        return []
    return parsed if isinstance(parsed, list) else []


def _wait_for_jobs(tour: Tour, jobs: list[DemoJob], timeout: float) -> None:
    """Poll the job table until every job is finished, showing a live table."""
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    wanted = {job.job_id: job for job in jobs if job.job_id}
    dropped_at = {job.job_id: time.monotonic() for job in jobs}
    console = Console(file=tour.out)

    def table() -> Table:
        view = Table("job", "how", "JOB_STATUS", "RESULT", "EXIT_CODE", box=None)
        for job in jobs:
            record = job.record
            view.add_row(
                job.label,
                job.how,
                str(record.get("JOB_STATUS", "submitted")),
                str(record.get("RESULT", "")),
                str(record.get("EXIT_CODE", "")),
            )
        return view

    deadline = time.monotonic() + timeout
    with Live(table(), console=console, refresh_per_second=4, transient=False) as live:
        while time.monotonic() < deadline:
            records = _records(tour)
            for job_id, job in wanted.items():
                if job_id in records:
                    job.record = records[job_id]
                    if job.drop_to_running_seconds is None and records[job_id].get("PHASE") in (
                        "running",
                        FINISHED,
                    ):
                        job.drop_to_running_seconds = time.monotonic() - dropped_at[job_id]
            live.update(table())
            if all(job.record.get("PHASE") == FINISHED for job in wanted.values()):
                return
            time.sleep(0.5)
    missing = [job.label for job in wanted.values() if job.record.get("PHASE") != FINISHED]
    raise ShepardError(
        f"while running the demo: {', '.join(missing)} did not finish in {timeout:.0f} s. "
        f"See `shepard-tf local logs` and the worker logs under the state folder's local/jobs/."
    )


def _batch_job(tour: Tour, folder: Path) -> str:
    """``shepard-tf batch FOLDER``; the job id is found by its input zip in the job table."""
    before = set(_records(tour))
    tour.run("batch", "--path_to_local_folder_to_batch", str(folder))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = {k: v for k, v in _records(tour).items() if k not in before}
        for job_id, record in new.items():
            if record.get("IS_INVOKED") in ("False", False):
                return job_id
        time.sleep(0.25)
    raise ShepardError(
        f"while running the demo: the zip of {folder.name} was uploaded but no job appeared in "
        f"60 s. See `shepard-tf local logs` (the scheduler's messages)."
    )


def _download_error_zip(state_dir: Path, key: str, dest_dir: Path) -> Path:
    import boto3

    import shepard.local

    flock = shepard.local.require_running(state_dir, doing="fetching the error zip")
    outputs = json.loads((state_dir / "outputs.json").read_text(encoding="utf-8"))
    bucket = outputs["errors_bucket"]
    bucket = bucket["value"] if isinstance(bucket, dict) else bucket
    s3 = boto3.client(
        "s3",
        endpoint_url=flock.endpoint_url,
        region_name=flock.env["AWS_REGION"],
        aws_access_key_id=flock.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=flock.env["AWS_SECRET_ACCESS_KEY"],
    )
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / Path(key).name
    s3.download_file(bucket, key, str(path))
    return path


@dataclass(frozen=True)
class RunnerChoice:
    """How the demo's jobs run: ``runner`` (``docker`` or ``process``), the line that says so,
    and whether the flock file must be copied with ``local.runner`` set to it."""

    runner: str
    line: str
    pin: bool


def _configured_runner(flock_file: Path) -> str:
    from shepard.config import load_flock as load_config

    config = load_config(flock_file)
    return str(config.local.runner) if config.local is not None else "auto"


def choose_runner(
    env: Mapping[str, str], requested: str | None = None, configured: str = "auto"
) -> RunnerChoice:
    """Docker when an engine answers and has the base image, else processes.

    ``requested`` (else ``$SHEPARD_DEMO_RUNNER``, else ``auto``) forces one; ``configured`` is
    the flock file's own ``local.runner``, followed when nothing is requested.
    """
    from shepard import images

    asked_by = "--runner" if requested else RUNNER_VARIABLE
    wanted = requested or env.get(RUNNER_VARIABLE) or "auto"
    if wanted not in RUNNERS:
        raise BadInput(
            f"while choosing how the demo's jobs run: {asked_by} is {wanted!r}. "
            f"Use one of {', '.join(RUNNERS)}"
        )
    pin = wanted != "auto"
    if wanted == "auto" and configured != "auto":
        wanted = configured
        asked_by = "the flock file's local.runner"
    if wanted == "process":
        return RunnerChoice(
            "process",
            f"Jobs run as processes: {asked_by} is process, so no Docker engine is used",
            pin,
        )
    url = images.engine_url(env)
    socket = url.removeprefix("unix://")
    client = images.docker_client(env, required=False)
    if client is None:
        if wanted == "docker":
            raise ShepardError(
                f"while choosing how the demo's jobs run: {asked_by} asks for docker, but no "
                f"Docker engine answers at {socket}. Start one with scripts/engine.sh up, or "
                f"run the jobs as processes (--runner process)"
            )
        return RunnerChoice(
            "process",
            "Jobs run as processes: no Docker engine answers (start one with scripts/engine.sh up)",
            False,
        )
    try:
        version = str(client.version().get("Version", "?"))
        base = env.get(images.BASE_IMAGE_VARIABLE) or images.LOCAL_BASE_IMAGE
        has_base = images.image_id(client, base) is not None
    finally:
        client.close()
    if not has_base:
        if wanted == "docker":
            raise ShepardError(
                f"while choosing how the demo's jobs run: {asked_by} asks for docker, but the "
                f"Docker engine has no base image {base}. Build it with "
                f"scripts/engine.sh base-image, or run the jobs as processes (--runner process)"
            )
        return RunnerChoice(
            "process",
            f"Jobs run as processes: the Docker engine answers but has no base image {base} "
            f"(build it with scripts/engine.sh base-image)",
            True,
        )
    short = ".".join(version.split(".")[:2])
    return RunnerChoice(
        "docker", f"Jobs run in Docker containers (engine {short} at {socket})", pin
    )


def pinned_flock_file(flock_file: Path, runner: str, folder: Path) -> Path:
    """A copy of ``flock_file`` in ``folder`` with ``local.runner: RUNNER`` and its code folder
    as an absolute path (so the copy builds and runs the same code)."""
    import yaml

    from shepard.config import load_flock as load_config
    from shepard.local.settings import settings_from_config

    document = yaml.safe_load(flock_file.read_text(encoding="utf-8")) or {}
    local = dict(document.get("local") or {})
    local["runner"] = runner
    code_dir = settings_from_config(load_config(flock_file)).code_dir
    if code_dir:
        local["code_dir"] = code_dir
    document["local"] = local
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / flock_file.name
    copy.write_text(
        f"# {flock_file} with local.runner: {runner}, written by the demo.\n"
        + yaml.safe_dump(document, sort_keys=False),
        encoding="utf-8",
    )
    return copy


def run_hello_world(tour: Tour, result: DemoResult, setup: Path, timeout: float) -> None:
    """The tour's jobs on a flock that is up: the secret stored, the two API jobs and the zip
    drop, watched to the end, ``query``, the results retrieved and listed (``result.jobs``)."""
    failing, succeeding, tagged = result.jobs
    results_dir = result.results_dir
    tour.say(
        "Store the files of test_secrets as the flock's secret. Every job finds them in "
        "$ROOT_INPUT_NAME/secrets/."
    )
    tour.run("secretify", "--path_to_local_secrets", str(setup / "test_secrets"))

    tour.say(
        "Run the Hello World's first job through the flock's API. testing_code.py needs "
        "test1..test4, which this payload lacks, so the job will fail."
    )
    failing.job_id = _job_id_of(
        tour.run_json("batch_via_api", "--json_payload", json.dumps(FAILING_PAYLOAD), "--json")
    )
    tour.note(f"job id {failing.job_id}")

    tour.say("Run the second job, with test1=test1, test2=test2, test3=test3, test4=0.")
    succeeding.job_id = _job_id_of(
        tour.run_json("batch_via_api", "--json_payload", json.dumps(SUCCEEDING_PAYLOAD), "--json")
    )
    tour.note(f"job id {succeeding.job_id}")

    tour.say(
        "Drop a job as a zip: `batch` zips test_payloads/tag_no_error (its inputs.json sets "
        'TAG "test_file") into the inputs bucket; the scheduler Lambda reads it and starts '
        "the job."
    )
    tagged.job_id = _batch_job(tour, setup / "test_payloads" / "tag_no_error")
    tour.note(f"job id {tagged.job_id}")

    tour.say("Watch the jobs: their status comes from the flock's job table.")
    mark = time.monotonic()
    _wait_for_jobs(tour, result.jobs, timeout)
    result.seconds["jobs"] = time.monotonic() - mark

    tour.say("`query` shows the same table any time, here or in a script (--json).")
    tour.run("query")

    tour.say(f"Retrieve the results: new zips in the outputs bucket come to {results_dir}.")
    tour.run("retrieve", "--directory_to_sync_s3_bucket_to", str(results_dir))
    zips = sorted(results_dir.rglob("*.zip"))
    for job in result.jobs:
        job.result_zips = [z for z in zips if job.job_id and job.job_id in z.name]
    error_key = failing.record.get("ERROR_ZIP")
    if error_key:
        failing.error_zip = _download_error_zip(
            result.state_dir, str(error_key), results_dir / "errors"
        )
    for job in result.jobs:
        record = job.record
        tour.note(
            f"{job.label}: RESULT {record.get('RESULT')}"
            + (f", exit code {record['EXIT_CODE']}" if "EXIT_CODE" in record else "")
        )
        for path in job.result_zips:
            with zipfile.ZipFile(path) as archive:
                names = ", ".join(sorted(archive.namelist()))
            tour.note(f"    {path.name}: {names}")
        if job.error_zip is not None:
            tour.note(f"    error zip (its logs): {job.error_zip.name}")


def hello_world_jobs() -> list[DemoJob]:
    """The tour's three jobs, in the order :func:`run_hello_world` runs them."""
    return [
        DemoJob("Hello World job 1 (fails on purpose)", "batch_via_api"),
        DemoJob("Hello World job 2 (succeeds)", "batch_via_api"),
        DemoJob("tag_no_error (zip drop)", "batch"),
    ]


def destroy_flock(tour: Tour, result: DemoResult) -> None:
    """The last step: ``shepard-tf destroy``, and the service stopped even if destroy failed."""
    import shepard.local

    tour.say(
        "Destroy the flock. On AWS that is a Terraform destroy; a local flock's resources all "
        "live in its emulator, so its service is stopped and its state removed."
    )
    mark = time.monotonic()
    try:
        tour.run("destroy", str(result.flock_file), "--auto-approve")
        result.destroyed = True
    finally:
        result.seconds["destroy"] = time.monotonic() - mark
        shepard.local.stop(result.state_dir)


def run_demo(
    *,
    flock_file: Path = SETUP / "flock.yaml",
    results_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    keep: bool = False,
    timeout: float = 300.0,
    out: Any = None,
    runner: str | None = None,
) -> DemoResult:
    """The tour; returns what it did. Destroys the flock at the end (even on failure) unless
    ``keep``. ``runner`` (else ``$SHEPARD_DEMO_RUNNER``, else ``auto``): how jobs run."""
    import shepard.local
    from shepard import deploy

    base_env = dict(os.environ if env is None else env)
    flock_file = flock_file.resolve()
    setup = flock_file.parent
    results_dir = (results_dir or Path("build/demo/results")).resolve()
    # Profiles of the demo live beside its results, so `make demo` never changes yours.
    base_env.setdefault("SHEPARD_CONFIG_DIR", str(results_dir.parent / "profiles"))
    # The emulator takes any credentials; these keep the demo away from a real account's.
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        base_env.pop(key, None)
    base_env.update(
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        | {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    tour = Tour(base_env, out)
    configured = _configured_runner(flock_file)
    choice = choose_runner(base_env, runner, configured)
    deployed = flock_file
    if choice.pin and choice.runner != configured:
        deployed = pinned_flock_file(flock_file, choice.runner, results_dir.parent / "flock")
    state_dir = deploy.load_flock(deployed, base_env).state_dir
    result = DemoResult(deployed, state_dir, results_dir, jobs=hello_world_jobs(), env=base_env)
    result.extra["runner"] = choice.runner
    result.extra["runner_line"] = choice.line
    started = time.monotonic()

    print(
        "shepard-tf demo: the Hello World of Shepard, on a local flock. Nothing here needs an\n"
        "AWS account: the same Terraform and Lambda code run against an emulator on 127.0.0.1,\n"
        "and jobs run on this machine.",
        file=tour.out,
    )
    print(choice.line, file=tour.out, flush=True)
    try:
        tour.say(
            "Deploy the testing-setup flock. `target: local` in its flock.yaml starts the local "
            "flock service (an AWS emulator, the Lambda runtime and a job runner) and applies "
            "terraform/flock to it; then a profile for the flock is written."
        )
        if deployed != flock_file:
            tour.note(f"(a copy of {flock_file} with local.runner: {choice.runner})")
        mark = time.monotonic()
        tour.run("apply", str(deployed), "--auto-approve")
        result.seconds["apply"] = time.monotonic() - mark
        service = shepard.local.status(state_dir)
        result.service_pid = service.pid
        result.service_ports = [
            int(url.rsplit(":", 1)[1])
            for url in (service.endpoint_url, service.lambda_endpoint_url)
            if url
        ]
        tour.note(
            f"local flock service: pid {service.pid}, emulator {service.endpoint_url}, "
            f"{service.parallel_jobs} job(s) at once ({service.runner} runner)"
        )
        run_hello_world(tour, result, setup, timeout)
    finally:
        if not keep:
            destroy_flock(tour, result)
        else:
            tour.say(
                f"The flock keeps running (--keep). Try `SHEPARD_CONFIG_DIR="
                f"{base_env['SHEPARD_CONFIG_DIR']} shepard-tf query`, and "
                f"`shepard-tf destroy {deployed} --auto-approve` when done."
            )
    result.seconds["total"] = time.monotonic() - started
    print(
        f"\nDone in {result.seconds['total']:.0f} s. Next: read docs/local-flock.md, or set "
        f"`target: aws` in a flock.yaml of your own and `shepard-tf apply` it.",
        file=tour.out,
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python examples/demo.py", description=__doc__)
    parser.add_argument("--flock", type=Path, default=SETUP / "flock.yaml")
    parser.add_argument("--results", type=Path, default=Path("build/demo/results"))
    parser.add_argument("--keep", action="store_true", help="leave the flock running")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for jobs")
    parser.add_argument(
        "--runner",
        choices=RUNNERS,
        default=None,
        help=f"how jobs run (default ${RUNNER_VARIABLE}, else auto: Docker when an engine answers)",
    )
    args = parser.parse_args(argv)
    try:
        run_demo(
            flock_file=args.flock,
            results_dir=args.results,
            keep=args.keep,
            timeout=args.timeout,
            runner=args.runner,
        )
    except ShepardError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        return int(ExitStatus.INTERRUPTED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
