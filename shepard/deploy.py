"""Deploying a flock with Terraform: render, plan, apply, destroy, outputs.

A pipeline of small stages, each handed to the next: the flock file is loaded
(:func:`load_flock`), rendered into the state folder (tfvars + Lambda zips, :func:`render`), a
working copy of ``terraform/`` is prepared and initialised (:class:`FlockTerraform`), then planned,
applied or destroyed with Terraform's ``-json`` stream driving the progress display. Everything
takes the environment as a parameter, so tests run it in-process against an emulator.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from shepard.emulator import is_loopback_url
from shepard.errors import BadInput, ShepardError
from shepard.tf.binary import find_terraform
from shepard.tf.events import ChangeSummary, Event, PlannedChange
from shepard.tf.mirror import provider_environment
from shepard.tf.progress import ApplyDisplay
from shepard.tf.runner import TerraformRunner
from shepard.tf.workdir import (
    BACKEND_FILE,
    INIT_STAMP,
    Backend,
    backend_from_config,
    declared_outputs,
    init_fingerprint,
    render_backend_override,
    source_hash,
    sync_working_copy,
    terraform_source,
    write_if_changed,
)

STATE_DIR_VARIABLE = "SHEPARD_STATE_DIR"
TFVARS_FILE = "flock.auto.tfvars.json"
OUTPUTS_FILE = "outputs.json"
IMAGES_FILE = "images.json"
PLAN_FILE = "shepard.tfplan"

Confirm = Callable[[str], bool]


# --------------------------------------------------------------------------------------------
# Plain data passed between the stages


@dataclass(frozen=True)
class PlanSummary:
    """What a plan would do."""

    add: int
    change: int
    destroy: int
    changes: tuple[PlannedChange, ...] = ()

    @property
    def has_changes(self) -> bool:
        return bool(self.add or self.change or self.destroy)

    @property
    def total(self) -> int:
        """Operations an apply of this plan performs: a replace counts twice, and data sources
        that can only be read during the apply count too."""
        reads = sum(c.action == "read" for c in self.changes)
        return self.add + self.change + self.destroy + reads

    def listing(self) -> str:
        """One line per planned change, marked as Terraform marks them (+ ~ - -/+ <=)."""
        marks = {"create": "+", "update": "~", "delete": "-", "replace": "-/+", "read": "<="}
        return "".join(
            f"  {marks.get(c.action, '?'):>3} {c.address} ({c.action})\n" for c in self.changes
        )

    def describe(self) -> str:
        if not self.has_changes:
            return "No changes: the flock matches its configuration."
        return f"Plan: {self.add} to add, {self.change} to change, {self.destroy} to destroy."


@dataclass(frozen=True)
class Flock:
    """What deploying needs to know about one flock file."""

    name: str
    region: str
    target: str
    flock_file: Path
    state_dir: Path
    backend: Backend = field(default_factory=Backend)
    config: Any = None


@dataclass
class Timings:
    """Seconds spent in each Terraform command of the last run (for the record and for tests)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, step: str, seconds: float) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + seconds


last_timings = Timings()


# --------------------------------------------------------------------------------------------
# Stage 1: the flock file


def _module(name: str, doing: str) -> Any:
    """Import a part of shepard-tf lazily (another engineer's, or an optional extra)."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ShepardError(
            f"while {doing}: {name} cannot be imported ({error}). Reinstall shepard-tf with its "
            "extras: pip install 'shepard-tf[local]'"
        ) from None


def state_dir_for(flock_file: Path, name: str, env: Mapping[str, str]) -> Path:
    """``$SHEPARD_STATE_DIR/<name>/`` or ``<folder of flock.yaml>/.shepard/<name>/``."""
    base = env.get(STATE_DIR_VARIABLE)
    root = Path(base) if base else flock_file.resolve().parent / ".shepard"
    return (root / name).resolve()


def load_flock(flock_file: Path, env: Mapping[str, str]) -> Flock:
    """Load and validate ``flock_file`` (``shepard.config``) into a :class:`Flock`."""
    flock_file = Path(flock_file)
    if not flock_file.is_file():
        raise BadInput(
            f"while reading the flock file: {flock_file} does not exist. "
            "Give the path of a flock.yaml"
        )
    loaded = _module("shepard.config", "reading the flock file").load_flock(flock_file)
    return Flock(
        name=loaded.name,
        region=loaded.region,
        target=getattr(loaded, "target", "aws"),
        flock_file=flock_file.resolve(),
        state_dir=state_dir_for(flock_file, loaded.name, env),
        backend=backend_from_config(getattr(loaded, "state", None)),
        config=loaded,
    )


def is_emulator(target: str, env: Mapping[str, str]) -> bool:
    """True for ``target: local`` or when ``AWS_ENDPOINT_URL`` is a loopback address."""
    return target == "local" or is_loopback_url(env.get("AWS_ENDPOINT_URL"))


# --------------------------------------------------------------------------------------------
# Stage 2: render the tfvars and the Lambda packages into the state folder


def _merge_images(state_dir: Path, tfvars_text: str, images: Mapping[str, str] | None) -> str:
    """Set the ``images`` tfvar from what ``deploy`` pushed, remembered in ``images.json`` so that
    a later plan does not roll the images back to the defaults."""
    remembered_file = state_dir / IMAGES_FILE
    remembered: dict[str, str] = {}
    if remembered_file.is_file():
        remembered = json.loads(remembered_file.read_text())
    if images:
        remembered.update({k: v for k, v in images.items() if v})
        write_if_changed(remembered_file, json.dumps(remembered, indent=2, sort_keys=True) + "\n")
    if not remembered:
        return tfvars_text
    tfvars = json.loads(tfvars_text)
    tfvars["images"] = {**(tfvars.get("images") or {}), **remembered}
    return json.dumps(tfvars, indent=2, sort_keys=True) + "\n"


def render_flock(
    flock: Flock, env: Mapping[str, str], *, images: Mapping[str, str] | None = None
) -> Path:
    """Write ``flock.auto.tfvars.json`` and ``lambda/*.zip`` into the flock's state folder."""
    from shepard.package import build_lambda_zips

    flock_render = _module("shepard.render", f"rendering flock {flock.name}")
    flock.state_dir.mkdir(parents=True, exist_ok=True)
    zips = build_lambda_zips(flock.state_dir / "lambda")
    text = flock_render.render_tfvars(flock.config, zips, emulator=is_emulator(flock.target, env))
    text = _merge_images(flock.state_dir, text, images)
    path = flock.state_dir / TFVARS_FILE
    write_if_changed(path, text)
    return path


def render(flock_file: Path, *, env: Mapping[str, str] | None = None) -> Path:
    """Render ``flock_file`` into its state folder; return the tfvars file."""
    import os

    env = dict(os.environ) if env is None else env
    return render_flock(load_flock(Path(flock_file), env), env)


# --------------------------------------------------------------------------------------------
# Stage 3: Terraform in the flock's working copy


def _summary(events: list[Event]) -> PlanSummary:
    changes = tuple(e for e in events if isinstance(e, PlannedChange) and e.action != "noop")
    summaries = [e for e in events if isinstance(e, ChangeSummary)]
    if summaries:
        last = summaries[-1]
        return PlanSummary(last.add, last.change, last.remove, changes)
    add = sum(c.action in {"create", "replace"} for c in changes)
    change = sum(c.action == "update" for c in changes)
    destroy = sum(c.action in {"delete", "replace"} for c in changes)
    return PlanSummary(add, change, destroy, changes)


class FlockTerraform:
    """Terraform for one flock: its working copy under ``<state>/terraform`` and its runner."""

    def __init__(
        self,
        *,
        name: str,
        region: str,
        state_dir: Path,
        env: Mapping[str, str],
        backend: Backend | None = None,
        tfvars: Path | None = None,
        timings: Timings | None = None,
    ) -> None:
        self.name = name
        self.region = region
        self.state_dir = state_dir
        self.backend = backend or Backend()
        self.tfvars = tfvars if tfvars is not None else state_dir / TFVARS_FILE
        self.timings = timings if timings is not None else Timings()
        self.workdir = state_dir / "terraform"
        self.root = self.workdir / "flock"
        self.terraform = find_terraform(env)
        run_env = provider_environment(env, state_dir / "terraformrc")
        run_env.update({"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"})
        self.env = run_env
        self.source = terraform_source(env)
        self.runner = TerraformRunner(self.terraform, self.root, run_env)

    def _timed(self, step: str, started: float) -> None:
        self.timings.add(step, time.monotonic() - started)

    def prepare(self) -> None:
        """Refresh the working copy and run ``terraform init`` when anything it depends on
        changed (source, backend, provider config, Terraform version)."""
        sync_working_copy(self.source, self.workdir)
        backend_text = render_backend_override(
            self.backend, state_dir=self.state_dir, flock_name=self.name, region=self.region
        )
        write_if_changed(self.root / BACKEND_FILE, backend_text)
        cli_config = Path(self.env.get("TF_CLI_CONFIG_FILE", ""))
        fingerprint = init_fingerprint(
            source_hash(self.source),
            backend_text,
            str(cli_config),
            cli_config.read_text() if cli_config.is_file() else "",
            self.terraform.version_text,
        )
        stamp = self.workdir / INIT_STAMP
        if (
            stamp.is_file()
            and stamp.read_text().strip() == fingerprint
            and (self.root / ".terraform").is_dir()
        ):
            return
        started = time.monotonic()
        self.runner.run(
            ["init", "-input=false", "-no-color"],
            doing=f"initialising Terraform for flock {self.name}",
        )
        self._timed("init", started)
        stamp.write_text(fingerprint + "\n")

    def _var_args(self) -> list[str]:
        if not self.tfvars.is_file():
            raise ShepardError(
                f"while planning flock {self.name}: {self.tfvars} does not exist. "
                "Run `shepard-tf render` first"
            )
        return [f"-var-file={self.tfvars}"]

    def plan(self, *, destroy: bool = False, out_file: Path | None = None) -> PlanSummary:
        args = ["plan", "-json", "-input=false", *self._var_args()]
        if destroy:
            args.append("-destroy")
        if out_file is not None:
            args.append(f"-out={out_file}")
        started = time.monotonic()
        verb = "planning the destruction of" if destroy else "planning"
        result = self.runner.run(args, doing=f"{verb} flock {self.name}", json_stream=True)
        self._timed("plan", started)
        return _summary(result.events)

    def apply_plan(
        self, plan_file: Path, *, total: int, stream: IO[str], env: Mapping[str, str], title: str
    ) -> None:
        display = ApplyDisplay(stream, title=title, total=total, env=env)
        started = time.monotonic()
        with display:
            self.runner.run(
                ["apply", "-json", "-input=false", "-auto-approve", str(plan_file)],
                doing=f"{title.lower()}",
                json_stream=True,
                on_event=display.handle,
                on_interrupt=lambda: display.note(
                    "Interrupted: waiting for Terraform to finish the operations in flight and "
                    "save its state (this can take a minute)..."
                ),
            )
        self._timed("destroy" if title.startswith("Destroy") else "apply", started)

    def outputs(self) -> dict[str, Any]:
        """``terraform output -json`` as plain values, also saved to ``<state>/outputs.json``."""
        started = time.monotonic()
        result = self.runner.run(
            ["output", "-json", "-no-color"], doing=f"reading the outputs of flock {self.name}"
        )
        self._timed("output", started)
        try:
            raw = json.loads(result.stdout or "{}")
        except ValueError:
            raise ShepardError(
                f"while reading the outputs of flock {self.name}: terraform output -json printed "
                "something that is not JSON. Run `terraform output` in "
                f"{self.root} to see why"
            ) from None
        # Terraform leaves null outputs out; the contract has them, as None. Before the first
        # apply there are no outputs at all, and the answer stays empty.
        values: dict[str, Any] = dict.fromkeys(declared_outputs(self.root)) if raw else {}
        values.update({name: item.get("value") for name, item in raw.items()})
        write_if_changed(
            self.state_dir / OUTPUTS_FILE, json.dumps(values, indent=2, sort_keys=True) + "\n"
        )
        return values


# --------------------------------------------------------------------------------------------
# Stage 4: the commands


def _confirm_on_terminal(question: str) -> bool:
    if not sys.stdin.isatty():
        raise BadInput(
            f"while asking to confirm: {question} needs an answer but the input is not a "
            "terminal. Pass --auto-approve to go ahead without asking"
        )
    answer = input(f"{question} Only 'yes' will be accepted: ")
    return answer.strip().lower() == "yes"


def _local_env(flock: Flock, env: Mapping[str, str]) -> dict[str, str]:
    """For ``target: local``: start the local flock service and add its environment."""
    merged = dict(env)
    if flock.target != "local":
        return merged
    local = _module("shepard.local", f"starting the local flock {flock.name}")
    running = local.ensure_running(flock.config, flock.state_dir)
    merged.update(running.env)
    return merged


def _terraform(flock: Flock, env: Mapping[str, str]) -> FlockTerraform:
    tf = FlockTerraform(
        name=flock.name,
        region=flock.region,
        state_dir=flock.state_dir,
        env=env,
        backend=flock.backend,
        timings=last_timings,
    )
    tf.prepare()
    return tf


def plan(
    flock_file: Path, *, env: Mapping[str, str], progress: IO[str] | None = None
) -> PlanSummary:
    """Render and plan the flock; return what an apply would do (changes nothing)."""
    last_timings.seconds.clear()
    flock = load_flock(Path(flock_file), env)
    env = _local_env(flock, env)
    render_flock(flock, env)
    summary = _terraform(flock, env).plan()
    if progress is not None:
        progress.write(summary.describe() + "\n")
    return summary


def apply_flock(
    flock: Flock,
    tf: FlockTerraform,
    *,
    env: Mapping[str, str],
    auto_approve: bool,
    confirm: Confirm | None,
    stream: IO[str],
) -> dict[str, Any]:
    """Plan to a file, confirm, apply it with the live display, then read the outputs."""
    plan_file = tf.root / PLAN_FILE
    try:
        stream.write(f"Planning flock {flock.name}...\n")
        summary = tf.plan(out_file=plan_file)
        if summary.has_changes and not auto_approve:
            stream.write(summary.listing())
        stream.write(f"{summary.describe()}\n")
        if summary.has_changes:
            if not auto_approve:
                ask = confirm or _confirm_on_terminal
                if not ask(f"Apply these changes to flock {flock.name} ({flock.region})?"):
                    raise ShepardError(
                        f"while applying flock {flock.name}: not confirmed. Nothing was changed"
                    )
            tf.apply_plan(
                plan_file,
                total=summary.total,
                stream=stream,
                env=env,
                title=f"Applying flock {flock.name}",
            )
    finally:
        plan_file.unlink(missing_ok=True)
    return tf.outputs()


def apply(
    flock_file: Path,
    *,
    env: Mapping[str, str],
    auto_approve: bool = False,
    confirm: Confirm | None = None,
    progress: IO[str] | None = None,
    images: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Deploy the flock; return its outputs (also in ``<state>/outputs.json``).

    ``progress`` is the stream of the live display (default stderr); ``confirm`` is asked before
    anything changes unless ``auto_approve``; ``images`` (``payload``/``worker`` URIs) overrides
    and remembers the ``images`` tfvar.
    """
    last_timings.seconds.clear()
    stream = sys.stderr if progress is None else progress
    flock = load_flock(Path(flock_file), env)
    env = _local_env(flock, env)
    render_flock(flock, env, images=images)
    tf = _terraform(flock, env)
    return apply_flock(
        flock, tf, env=env, auto_approve=auto_approve, confirm=confirm, stream=stream
    )


def _confirm_destroy(flock: Flock, confirm: Confirm | None) -> None:
    ask = confirm or _confirm_on_terminal
    question = (
        f"Destroy flock {flock.name} ({flock.region}) and everything in it: buckets, job "
        "table, queues, compute environments?"
    )
    if not ask(question):
        raise ShepardError(
            f"while destroying flock {flock.name}: not confirmed. Nothing was destroyed"
        )


def destroy_flock(
    flock: Flock,
    tf: FlockTerraform,
    *,
    env: Mapping[str, str],
    auto_approve: bool,
    confirm: Confirm | None,
    stream: IO[str],
) -> None:
    """Plan the destruction to a file, confirm naming the flock, apply it."""
    if not auto_approve:
        _confirm_destroy(flock, confirm)
    plan_file = tf.root / PLAN_FILE
    try:
        summary = tf.plan(destroy=True, out_file=plan_file)
        if summary.has_changes:
            tf.apply_plan(
                plan_file,
                total=summary.total,
                stream=stream,
                env=env,
                title=f"Destroying flock {flock.name}",
            )
        else:
            stream.write(f"Flock {flock.name} has nothing to destroy.\n")
    finally:
        plan_file.unlink(missing_ok=True)
    (flock.state_dir / OUTPUTS_FILE).unlink(missing_ok=True)


def destroy(
    flock_file: Path,
    *,
    env: Mapping[str, str],
    auto_approve: bool = False,
    confirm: Confirm | None = None,
    progress: IO[str] | None = None,
) -> None:
    """Destroy everything the flock created; for ``target: local`` also stop its service."""
    last_timings.seconds.clear()
    stream = sys.stderr if progress is None else progress
    flock = load_flock(Path(flock_file), env)
    if flock.target == "local" and flock.backend.kind == "local":
        destroy_local_flock(flock, auto_approve=auto_approve, confirm=confirm, stream=stream)
        return
    if not auto_approve:
        # Asked before anything is rendered or started: a declined destroy changes nothing.
        _confirm_destroy(flock, confirm)
    run_env = _local_env(flock, env)
    render_flock(flock, run_env)
    tf = _terraform(flock, run_env)
    destroy_flock(flock, tf, env=run_env, auto_approve=True, confirm=None, stream=stream)
    if flock.target == "local":
        _module("shepard.local", f"stopping the local flock {flock.name}").stop(flock.state_dir)


def destroy_local_flock(
    flock: Flock, *, auto_approve: bool, confirm: Confirm | None, stream: IO[str]
) -> None:
    """A local flock lives in its service's in-memory emulator: stopping the service destroys
    every resource at once, so a Terraform destroy (about 90 s against moto) would only delete
    what is about to vanish. The state that described those resources is removed with them, so
    the next apply starts from nothing, as after a real destroy."""
    if not auto_approve:
        ask = confirm or _confirm_on_terminal
        question = (
            f"Destroy local flock {flock.name}: stop its service and forget its buckets, job "
            "table and results?"
        )
        if not ask(question):
            raise ShepardError(
                f"while destroying flock {flock.name}: not confirmed. Nothing was destroyed"
            )
    started = time.monotonic()
    local = _module("shepard.local", f"stopping the local flock {flock.name}")
    was_running = local.stop(flock.state_dir)
    for name in ("terraform.tfstate", "terraform.tfstate.backup", OUTPUTS_FILE):
        (flock.state_dir / name).unlink(missing_ok=True)
    last_timings.add("destroy", time.monotonic() - started)
    stream.write(
        f"Destroyed local flock {flock.name}: "
        + ("its service is stopped" if was_running else "its service was not running")
        + "; every resource lived in its emulator, and its Terraform state is removed.\n"
    )


def outputs(flock_file: Path, *, env: Mapping[str, str]) -> dict[str, Any]:
    """The flock's Terraform outputs as plain values (``{}`` before the first apply)."""
    flock = load_flock(Path(flock_file), env)
    if flock.target == "local" and flock.backend.kind == "local":
        # The state is a local file: reading outputs needs no emulator.
        run_env = dict(env)
    else:
        run_env = _local_env(flock, env)
    return _terraform(flock, run_env).outputs()
