"""Terraform for one flock: its working copy under ``<state>/terraform``, init, plan, apply,
show and output, each timed.

The working copy and ``init`` are refreshed only when something they depend on changed
(:mod:`shepard.tf.workdir`); plans and applies stream Terraform's ``-json`` events, which drive the
live display (:mod:`shepard.tf.progress`) and the plan summary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from shepard.errors import BackendError, BadInput, ShepardError
from shepard.tf.binary import find_terraform
from shepard.tf.events import ChangeSummary, Event, PlannedChange
from shepard.tf.mirror import provider_environment
from shepard.tf.progress import ApplyDisplay
from shepard.tf.runner import TerraformRunner
from shepard.tf.workdir import (
    BACKEND_FILE,
    INIT_STAMP,
    Backend,
    declared_outputs,
    init_fingerprint,
    render_backend_override,
    source_hash,
    sync_working_copy,
    terraform_source,
    write_if_changed,
)

OUTPUTS_FILE = "outputs.json"


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


def summarize(events: Sequence[Event]) -> PlanSummary:
    """The :class:`PlanSummary` of a ``terraform plan -json`` event stream."""
    changes = tuple(e for e in events if isinstance(e, PlannedChange) and e.action != "noop")
    summaries = [e for e in events if isinstance(e, ChangeSummary)]
    if summaries:
        last = summaries[-1]
        return PlanSummary(last.add, last.change, last.remove, changes)
    add = sum(c.action in {"create", "replace"} for c in changes)
    change = sum(c.action == "update" for c in changes)
    destroy = sum(c.action in {"delete", "replace"} for c in changes)
    return PlanSummary(add, change, destroy, changes)


@dataclass
class Timings:
    """Seconds spent in each Terraform command of one run (for the record and for tests)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, step: str, seconds: float) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + seconds


STALE_PLAN_MARKS = ("Saved plan is stale", "Saved plan does not match the given state")


class FlockTerraform:
    """Terraform for one flock: its working copy under ``<state>/terraform`` and its runner."""

    def __init__(
        self,
        *,
        name: str,
        region: str,
        state_dir: Path,
        env: Mapping[str, str],
        var_files: Sequence[Path],
        backend: Backend | None = None,
        timings: Timings | None = None,
    ) -> None:
        self.name = name
        self.region = region
        self.state_dir = state_dir
        self.backend = backend or Backend()
        self.var_files = tuple(var_files)
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
        missing = [path for path in self.var_files if not path.is_file()]
        if missing:
            raise ShepardError(
                f"while planning flock {self.name}: {missing[0]} does not exist. "
                "Run `shepard-tf render` first"
            )
        return [f"-var-file={path}" for path in self.var_files]

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
        return summarize(result.events)

    def show_plan(self, plan_file: Path) -> dict[str, Any]:
        """``terraform show -json PLAN``: the saved plan as Terraform describes it."""
        started = time.monotonic()
        result = self.runner.run(
            ["show", "-json", "-no-color", str(plan_file)],
            doing=f"reading the saved plan {plan_file}",
        )
        self._timed("show", started)
        try:
            shown: dict[str, Any] = json.loads(result.stdout)
        except ValueError:
            raise BadInput(
                f"while reading the saved plan {plan_file}: terraform show -json printed "
                "something that is not JSON. Make the plan again with "
                "`shepard-tf plan FLOCK --out PLAN`"
            ) from None
        return shown

    def apply_plan(
        self, plan_file: Path, *, total: int, stream: IO[str], env: Mapping[str, str], title: str
    ) -> None:
        """Apply a saved plan with the live display; a stale plan is refused in plain words."""
        display = ApplyDisplay(stream, title=title, total=total, env=env)
        started = time.monotonic()
        try:
            with display:
                self.runner.run(
                    ["apply", "-json", "-input=false", "-auto-approve", str(plan_file)],
                    doing=f"{title.lower()}",
                    json_stream=True,
                    on_event=display.handle,
                    on_interrupt=lambda: display.note(
                        "Interrupted: waiting for Terraform to finish the operations in flight "
                        "and save its state (this can take a minute)..."
                    ),
                )
        except BackendError as error:
            if any(mark in error.message for mark in STALE_PLAN_MARKS):
                raise BadInput(
                    f"while {title.lower()}: the saved plan {plan_file} is stale: the flock "
                    "changed after it was made (another apply ran, or the plan belongs to "
                    "another state). Nothing was changed. Make a new plan with "
                    f"`shepard-tf plan FLOCK --out {plan_file}` and apply that"
                ) from None
            raise
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
