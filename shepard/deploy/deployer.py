"""One deployer per command: the flock (loaded once), its target, the stages that build its
tfvars, and Terraform; what it does is an executor.

    deployer = Deployer(load_flock(path, env), env=env)
    deployer.run(PlanOnly(out_file=Path("ci.tfplan")))     # plan, saved for a later apply
    deployer.run(Apply(auto_approve=True))                  # plan, confirm, apply, outputs
    deployer.run(ApplySaved(Path("ci.tfplan")))             # exactly that plan
    deployer.destroy(auto_approve=False)                    # confirm, then destroy

Every executor gets a prepared :class:`~shepard.tf.flock.FlockTerraform`: the target's
environment (the local flock's service started), the tfvars built by the stages and written once,
the target's overlay, the working copy initialised. Timings of the Terraform commands collect on
``deployer.timings``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from shepard.cost import cost_summary
from shepard.deploy.flock import Flock, claim_state_dir
from shepard.deploy.stages import Stage, default_stages, write_tfvars
from shepard.deploy.targets import AwsTarget, target_for
from shepard.errors import BackendError, BadInput, ShepardError
from shepard.tf.flock import OUTPUTS_FILE, FlockTerraform, PlanSummary, Timings

TFVARS_FILE = "flock.auto.tfvars.json"
PLAN_FILE = "shepard.tfplan"

Confirm = Callable[[str], bool]

ZONES_HINT = (
    "set network.availability_zones in the flock file (for example [us-east-1a, us-east-1b]), "
    "or give AWS credentials so the zones that exist can be looked up"
)


def confirm_on_terminal(question: str) -> bool:
    if not sys.stdin.isatty():
        raise BadInput(
            f"while asking to confirm: {question} needs an answer but the input is not a "
            "terminal. Pass --auto-approve to go ahead without asking"
        )
    answer = input(f"{question} Only 'yes' will be accepted: ")
    return answer.strip().lower() == "yes"


@dataclass(frozen=True)
class PlanResult:
    summary: PlanSummary
    plan_file: Path | None = None
    shown: dict[str, Any] | None = None  # `terraform show -json` of the plan, when asked


@dataclass(frozen=True)
class ApplyResult:
    outputs: dict[str, Any]
    summary: PlanSummary | None = None


class Executor(Protocol):
    """What to do with a prepared Terraform working copy."""

    renders: bool  # whether the stages build the tfvars first (a saved plan carries its own)

    def execute(self, deployer: Deployer, tf: FlockTerraform) -> Any: ...


@dataclass
class Deployer:
    """Deploys one loaded flock: target, stages and Terraform, driven by executors."""

    flock: Flock
    env: Mapping[str, str]
    target: AwsTarget | None = None
    stages: Sequence[Stage] = field(default_factory=default_stages)
    stream: IO[str] = field(default_factory=lambda: sys.stderr)
    confirm: Confirm = confirm_on_terminal
    timings: Timings = field(default_factory=Timings)
    doing: str = field(default="deploying", init=False)  # named in errors and refusals
    run_env: Mapping[str, str] = field(default_factory=dict, init=False)  # Terraform's, once run

    def __post_init__(self) -> None:
        if self.target is None:
            self.target = target_for(self.flock, self.env)

    @property
    def where(self) -> AwsTarget:
        assert self.target is not None
        return self.target

    # -- confirmation, written once ------------------------------------------------------------

    def ask(self, question: str, refused: str) -> None:
        """Ask ``question``; a no stops the command with ``refused`` (what was not done)."""
        if not self.confirm(question):
            raise ShepardError(f"while {self.doing}: not confirmed. {refused}")

    # -- preparing Terraform -----------------------------------------------------------------

    def build_tfvars(self) -> dict[str, Any]:
        """Run the stages into one mapping of variables."""
        tfvars: dict[str, Any] = {}
        for stage in self.stages:
            stage.run(self.flock, tfvars, self.env)
        return tfvars

    def render(self) -> Path:
        """Build the tfvars and write ``<state>/flock.auto.tfvars.json``; return its path."""
        self.flock.state_dir.mkdir(parents=True, exist_ok=True)
        return write_tfvars(self.flock.state_dir / TFVARS_FILE, self.build_tfvars())

    def terraform(self, run_env: Mapping[str, str], *, render: bool = True) -> FlockTerraform:
        note = claim_state_dir(self.flock)
        if note:
            self.stream.write(note + "\n")
        var_files = [self.render() if render else self.flock.state_dir / TFVARS_FILE]
        overlay = self.where.write_overlay(self.flock, run_env)
        if overlay is not None:
            var_files.append(overlay)
        tf = FlockTerraform(
            name=self.flock.name,
            region=self.flock.region,
            state_dir=self.flock.state_dir,
            env=run_env,
            var_files=var_files,
            backend=self.flock.backend,
            timings=self.timings,
        )
        tf.prepare()
        return tf

    def run(self, executor: Executor) -> Any:
        """Prepare Terraform in the target's environment and hand it to ``executor``."""
        self.run_env = self.where.environment(self.flock, self.env)
        tf = self.terraform(self.run_env, render=executor.renders)
        return executor.execute(self, tf)

    # -- the commands ------------------------------------------------------------------------

    def plan(self, *, out_file: Path | None = None, show_json: bool = False) -> PlanResult:
        self.doing = f"planning flock {self.flock.name}"
        result: PlanResult = self.run(PlanOnly(out_file=out_file, show_json=show_json))
        return result

    def apply(self, *, auto_approve: bool = False, plan_file: Path | None = None) -> ApplyResult:
        self.doing = f"applying flock {self.flock.name}"
        executor: Executor = (
            ApplySaved(plan_file) if plan_file is not None else Apply(auto_approve=auto_approve)
        )
        result: ApplyResult = self.run(executor)
        return result

    def destroy(self, *, auto_approve: bool = False) -> None:
        """Destroy everything the flock created (asked first, before anything is rendered or
        started, unless ``auto_approve``)."""
        self.doing = f"destroying flock {self.flock.name}"
        ask = (lambda question, refused: None) if auto_approve else self.ask
        seconds = self.where.destroy_shortcut(self.flock, ask, stream=self.stream)
        if seconds is not None:
            self.timings.add("destroy", seconds)
            return
        ask(
            f"Destroy flock {self.flock.name} ({self.flock.region}) and everything in it: "
            "buckets, job table, queues, compute environments?",
            "Nothing was destroyed",
        )
        self.run(Destroy())
        self.where.after_destroy(self.flock)

    def outputs(self) -> dict[str, Any]:
        """The flock's Terraform outputs as plain values (``{}`` before the first apply)."""
        self.doing = f"reading the outputs of flock {self.flock.name}"
        run_env = self.where.outputs_environment(self.flock, self.env)
        return self.terraform(run_env, render=False).outputs()


def _zones_error(error: BackendError, flock: Flock) -> BackendError:
    if "availability zone" in error.message.lower() or "aws_availability_zones" in error.message:
        return BackendError(
            f"while planning flock {flock.name}: the availability zones of {flock.region} could "
            f"not be looked up:\n{error.message}\nTo plan without AWS, {ZONES_HINT}"
        )
    return error


@dataclass
class PlanOnly:
    """Plan and say what would change; optionally keep the plan file, or show it as JSON."""

    out_file: Path | None = None
    show_json: bool = False
    renders: bool = True

    def execute(self, deployer: Deployer, tf: FlockTerraform) -> PlanResult:
        plan_file = self.out_file
        if plan_file is None and self.show_json:
            plan_file = tf.root / PLAN_FILE
        try:
            try:
                summary = tf.plan(out_file=plan_file.absolute() if plan_file else None)
            except BackendError as error:
                raise _zones_error(error, deployer.flock) from None
            shown = tf.show_plan(plan_file.absolute()) if self.show_json and plan_file else None
        finally:
            if self.out_file is None and plan_file is not None:
                plan_file.unlink(missing_ok=True)
        return PlanResult(summary, self.out_file, shown)


@dataclass
class Apply:
    """Plan to a file, show it and confirm (unless ``auto_approve``), apply it, read outputs."""

    auto_approve: bool = False
    renders: bool = True

    def execute(self, deployer: Deployer, tf: FlockTerraform) -> ApplyResult:
        try:
            return self._plan_and_apply(deployer, tf)
        except BackendError as error:
            if not deployer.where.dropped_connection(error.message):
                raise
            deployer.stream.write(
                "The emulator dropped a connection; planning and applying again.\n"
            )
            return self._plan_and_apply(deployer, tf)

    def _plan_and_apply(self, deployer: Deployer, tf: FlockTerraform) -> ApplyResult:
        flock, stream = deployer.flock, deployer.stream
        plan_file = tf.root / PLAN_FILE
        try:
            stream.write(f"Planning flock {flock.name}...\n")
            try:
                summary = tf.plan(out_file=plan_file)
            except BackendError as error:
                raise _zones_error(error, flock) from None
            if summary.has_changes and not self.auto_approve:
                stream.write(summary.listing())
            stream.write(f"{summary.describe()}\n")
            if summary.has_changes and deployer.where.kind == "aws":  # emulators cost nothing
                stream.write(_cost_line(tf, plan_file, flock.region) + "\n")
            refuse_key_deletion(flock, [c.address for c in summary.changes if c.action in DELETING])
            if summary.has_changes:
                if not self.auto_approve:
                    deployer.ask(
                        f"Apply these changes to flock {flock.name} ({flock.region})?",
                        "Nothing was changed",
                    )
                tf.apply_plan(
                    plan_file,
                    total=summary.total,
                    stream=stream,
                    env=deployer.run_env,
                    title=f"Applying flock {flock.name}",
                )
        finally:
            plan_file.unlink(missing_ok=True)
        return ApplyResult(tf.outputs(), summary)


def _cost_line(tf: FlockTerraform, plan_file: Path, region: str) -> str:
    """The flock's fixed monthly cost from the plan about to be applied (docs/cost.md); a plan
    Terraform cannot show is said, and never stops the apply."""
    try:
        return cost_summary(tf.show_plan(plan_file), region)
    except BackendError as error:
        return f"Fixed cost of this flock: not worked out ({error.message.splitlines()[0]})"


DELETING = ("delete", "replace")


def refuse_key_deletion(flock: Flock, deleted: Sequence[str]) -> None:
    """Refuse an apply that would schedule the flock's own KMS key for deletion (``deleted``:
    the addresses the plan deletes or replaces).

    What was written under the key (objects, table items, the secret) stays encrypted with it:
    a flock applied with ``encryption.kms_key: flock`` (the only kind before AWS-managed keys
    became the default) and planned again with the default would make its data unreadable once
    the key's 7-day deletion window ends. ``destroy`` of the whole flock does not come here."""
    doomed = [address for address in deleted if ".aws_kms_key." in f".{address}"]
    if doomed:
        raise BadInput(
            f"while applying flock {flock.name}: the plan would schedule the flock's KMS key "
            f"for deletion ({', '.join(doomed)}), and the data already written under it "
            "(results, the job table, the secret) would become unreadable after 7 days. "
            "Nothing was changed. Keep the key with `encryption: {kms_key: flock}` in "
            f"{flock.flock_file.name}, or destroy the flock first to start again with "
            "AWS-managed keys"
        )


@dataclass
class ApplySaved:
    """Apply exactly a plan saved by ``plan --out``: nothing is rendered or asked again (the
    plan was the question); a plan of another flock, or a stale one, is refused."""

    plan_file: Path
    renders: bool = False

    def execute(self, deployer: Deployer, tf: FlockTerraform) -> ApplyResult:
        flock = deployer.flock
        plan_file = self.plan_file.absolute()
        if not plan_file.is_file():
            raise BadInput(
                f"while applying flock {flock.name}: the plan file {self.plan_file} does not "
                "exist. Make it with `shepard-tf plan FLOCK --out PLAN`"
            )
        shown = tf.show_plan(plan_file)
        planned_name = ((shown.get("variables") or {}).get("name") or {}).get("value")
        if planned_name != flock.name:
            raise BadInput(
                f"while applying flock {flock.name}: the plan {self.plan_file} was made for "
                f"flock {planned_name!r}, not {flock.name!r}. Nothing was changed. Make a plan "
                f"of this flock with `shepard-tf plan {flock.flock_file} --out PLAN`"
            )
        actions = [
            c["change"]["actions"]
            for c in shown.get("resource_changes") or []
            if c.get("change", {}).get("actions") not in (["no-op"], None)
        ]
        refuse_key_deletion(
            flock,
            [
                c.get("address", "")
                for c in shown.get("resource_changes") or []
                if "delete" in (c.get("change", {}).get("actions") or [])
            ],
        )
        total = sum(2 if len(a) == 2 else 1 for a in actions)
        if total:
            tf.apply_plan(
                plan_file,
                total=total,
                stream=deployer.stream,
                env=deployer.run_env,
                title=f"Applying flock {flock.name}",
            )
        else:
            deployer.stream.write("No changes: the flock matches its configuration.\n")
        return ApplyResult(tf.outputs())


@dataclass
class Destroy:
    """Plan the destruction to a file and apply it (asked beforehand by the deployer)."""

    renders: bool = True

    def execute(self, deployer: Deployer, tf: FlockTerraform) -> None:
        flock = deployer.flock
        remove_part_secrets(deployer, tf)
        plan_file = tf.root / PLAN_FILE
        try:
            summary = tf.plan(destroy=True, out_file=plan_file)
            if summary.has_changes:
                tf.apply_plan(
                    plan_file,
                    total=summary.total,
                    stream=deployer.stream,
                    env=deployer.run_env,
                    title=f"Destroying flock {flock.name}",
                )
            else:
                deployer.stream.write(f"Flock {flock.name} has nothing to destroy.\n")
        finally:
            plan_file.unlink(missing_ok=True)
        (flock.state_dir / OUTPUTS_FILE).unlink(missing_ok=True)


def remove_part_secrets(deployer: Deployer, tf: FlockTerraform) -> list[str]:
    """Delete the part secrets ``secretify`` made beside the flock's secret (Terraform does not
    know them) while the flock key that encrypts them still exists."""
    from botocore.exceptions import BotoCoreError, ClientError

    from shepard.aws.session import AwsSettings, base_session, client
    from shepard.joblayer.calls import delete_part_secrets

    secret = tf.outputs().get("secret_name")
    if not secret:
        return []  # never applied, or already destroyed
    env = deployer.run_env
    settings = AwsSettings(
        config_dir=deployer.flock.state_dir,
        env=env,
        region=deployer.flock.region,
        endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
    )
    try:
        removed = delete_part_secrets(
            client(base_session(settings), settings, "secretsmanager"), str(secret)
        )
    except (BotoCoreError, ClientError, ShepardError) as exc:  # say what is left; destroy goes on
        deployer.stream.write(
            f"note: could not delete the part secrets of {secret} ({exc}); delete the secrets "
            f"named {secret}-part-* yourself after the destroy.\n"
        )
        return []
    if removed:
        deployer.stream.write(f"Deleted {len(removed)} part secret(s) of {secret}.\n")
    return removed
