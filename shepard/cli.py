"""The ``shepard-tf`` command line: declare, parse, dispatch, map errors to exit codes.

Every command is declared ONCE, in :data:`COMMANDS`: its name, its handler (``"module:function"``
under :mod:`shepard.commands`), a summary, an example and its arguments. The parser, ``help``,
the shell completion and the man page (``make man``: argparse-manpage reads :func:`build_parser`)
are all made from those records. Every command of the original Shepard CLI keeps the seed's flag
names (``--json_payload``) and their dashed forms (``--json-payload``). A handler's module is
imported only when its command runs, so ``shepard-tf --help`` never loads boto3, rich, docker,
jinja2 or yaml.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from shepard import __version__
from shepard.errors import ExitStatus, ShepardError

PROG = "shepard-tf"
DESCRIPTION = (
    "Turn any container into a batch workflow on AWS Batch, deployed with Terraform."
    " Exit codes: 0 ok, 1 failure, 2 bad input, 3 AWS/Terraform error, 130 interrupted."
)
EPILOG = (
    'example:\n  shepard-tf batch_via_api --json_payload \'{"test1":"test1"}\'\n\n'
    "Run `shepard-tf COMMAND --help` for a command's options."
)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"true", "yes", "1", "on"}:
        return True
    if lowered in {"false", "no", "0", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, not {text!r}")


# -- the declarations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """One argument of a command.

    A positional when ``names`` is empty; otherwise an option whose names are given in the seed's
    spelling without dashes (``"json_payload"``): each becomes ``--json_payload`` and, when it has
    an underscore, ``--json-payload`` too. The handler reads it as ``ctx.flag(dest)``.
    """

    dest: str
    names: tuple[str, ...] = ()
    help: str | None = None
    metavar: str | None = None
    nargs: str | None = None
    action: str | None = None
    type: Callable[[str], Any] | None = None
    default: Any = None
    const: Any = None
    choices: tuple[str, ...] | None = None
    required: bool = False

    @property
    def positional(self) -> bool:
        return not self.names

    @property
    def option_strings(self) -> list[str]:
        strings: list[str] = []
        for name in self.names:
            strings.append(f"--{name}")
            if "_" in name:
                strings.append(f"--{name.replace('_', '-')}")
        return strings

    def add_to(self, parser: Any, *, suppress_default: bool = False) -> None:
        """Add to an ``ArgumentParser`` or an argument group of one."""
        options: dict[str, Any] = {"help": self.help}
        if self.action is not None:
            options["action"] = self.action
        for key in ("metavar", "nargs", "type", "const", "choices"):
            value = getattr(self, key)
            if value is not None:
                options[key] = list(value) if key == "choices" else value
        if suppress_default:
            options["default"] = argparse.SUPPRESS
        elif self.default is not None:
            options["default"] = self.default
        if self.positional:
            parser.add_argument(self.dest, **options)
            return
        if self.required:
            options["required"] = True
        parser.add_argument(*self.option_strings, dest=self.dest, **options)


def option(*names: str, dest: str | None = None, **details: Any) -> Arg:
    """An option; its dest is its first name unless given."""
    return Arg(dest=dest or names[0], names=names, **details)


def switch(*names: str, help: str) -> Arg:
    """An on/off option (``store_true``)."""
    return Arg(dest=names[0], names=names, action="store_true", help=help)


@dataclass(frozen=True)
class Command:
    """One command: everything the parser, ``help``, completion and the man page need."""

    name: str
    handler: str  # "module:function" under shepard.commands; the function takes a Context
    summary: str
    example: str
    args: tuple[Arg, ...] = ()

    @property
    def module(self) -> str:
        return f"shepard.commands.{self.handler.partition(':')[0]}"

    @property
    def function(self) -> str:
        return self.handler.partition(":")[2]

    def option_strings(self) -> list[str]:
        """Every ``--option`` it takes, the common options included, sorted."""
        return sorted(["--help", *(s for arg in (*COMMON, *self.args) for s in arg.option_strings)])


# Options every command takes (their defaults suppressed, so they may come before or after it).
COMMON: tuple[Arg, ...] = (
    switch("debug", help="show tracebacks"),
    option(
        "profile",
        "profile_name_to_use",
        metavar="NAME",
        help="shepard-tf profile to use for this command (default: the current one)",
    ),
    option(
        "aws_profile", metavar="NAME", help="AWS CLI profile (shared config or SSO) for credentials"
    ),
    option("region", help="AWS region (default: profile, then AWS config)"),
    option(
        "role_to_assume_to_target_account",
        metavar="ROLE",
        help="role name or ARN to assume for this command",
    ),
    option(
        "account_number",
        "shepard_account_number",
        metavar="ACCOUNT",
        help="12-digit account the role is in",
    ),
    option("mfa_token", metavar="CODE"),
    option("serial_number", metavar="MFA_ARN", help="MFA device serial number (ARN)"),
    option(
        "dont_assume",
        nargs="?",
        const=True,
        type=_bool,
        metavar="BOOL",
        help="True (default): use your own credentials; False: assume the role",
    ),
)

JSON = switch("json", help="print JSON instead of a table")
AUTO_APPROVE = switch("auto_approve", help="do not ask before changing infrastructure")
FLOCK_FILE = Arg(
    "flock_file",
    nargs="?",
    metavar="FLOCK_YAML",
    help="the flock's flock.yaml (default: the profile's)",
)
FLOCK_FILE_REQUIRED = Arg("flock_file", metavar="FLOCK_YAML", help="the flock's flock.yaml")
FLOCK_NAME = option(
    "cloudformation_stack_name",
    metavar="FLOCK",
    help="flock name (the seed's stack name): its profile's flock file is used",
)
PROFILE = Arg("name", nargs="?", metavar="PROFILE")
PROFILE_NAME = option("profile_name", metavar="PROFILE")
LAMBDA = option("lambda_to_invoke", metavar="FUNCTION")

COMMANDS: tuple[Command, ...] = (
    # -- profiles -------------------------------------------------------------------------------
    Command(
        "configure",
        "profile_cmds:configure",
        "create or edit a profile by answering prompts",
        "shepard-tf configure project_a",
        (PROFILE, PROFILE_NAME),
    ),
    Command(
        "auto_configure",
        "profile_cmds:auto_configure",
        "write a profile from a deployed flock's outputs",
        "shepard-tf auto_configure examples/testing-setup/flock.yaml",
        (
            FLOCK_FILE,
            FLOCK_NAME,
            option(
                "profile_name",
                metavar="PROFILE",
                help="profile to write (default: the flock's name)",
            ),
        ),
    ),
    Command(
        "set_profile",
        "profile_cmds:set_profile",
        "make a profile the current one",
        "shepard-tf set_profile project_a",
        (PROFILE, PROFILE_NAME),
    ),
    Command(
        "check_profile",
        "profile_cmds:check_profile",
        "list profiles (current marked) and its values",
        "shepard-tf check_profile",
        (JSON,),
    ),
    Command(
        "clear_profile_config",
        "profile_cmds:clear_profile_config",
        "leave no profile current",
        "shepard-tf clear_profile_config",
    ),
    Command(
        "delete_profile",
        "profile_cmds:delete_profile",
        "delete a profile",
        "shepard-tf delete_profile project_a",
        (PROFILE, PROFILE_NAME),
    ),
    Command(
        "where_am_i",
        "profile_cmds:where_am_i",
        "print the folder that holds the profiles",
        "shepard-tf where_am_i",
    ),
    # -- roles ----------------------------------------------------------------------------------
    Command(
        "set_role",
        "roles:set_role",
        "assume a role once and use it for every command",
        "shepard-tf set_role --role_to_assume_to_target_account Admin "
        "--shepard_account_number 123456789012 --serial_number "
        "arn:aws:iam::111111111111:mfa/me --mfa_token 123456",
        (option("duration_seconds", type=int, default=3600),),
    ),
    Command(
        "check_role",
        "roles:check_role",
        "show the role set by set_role",
        "shepard-tf check_role",
        (JSON,),
    ),
    Command(
        "release_role",
        "roles:release_role",
        "forget the role set by set_role",
        "shepard-tf release_role",
    ),
    # -- jobs -----------------------------------------------------------------------------------
    Command(
        "batch",
        "jobs:batch",
        "zip a folder with inputs.json and upload it: one job each",
        "shepard-tf batch --path_to_local_folder_to_batch ./job1",
        (
            Arg("folders", nargs="*", metavar="FOLDER", help="more folders to batch"),
            option("path_to_local_folder_to_batch", metavar="FOLDER", action="append"),
            option("s3_bucket_to_upload_to", metavar="BUCKET"),
            option(
                "parallel",
                type=int,
                metavar="N",
                help="folders zipped and uploaded at once (default 8)",
            ),
            option(
                "zip_name_override",
                metavar="NAME",
                help="name of the uploaded zip (one folder only)",
            ),
            option(
                "array",
                nargs="+",
                metavar="FILE_OR_DIR",
                help="submit these inputs (JSON files, or folders of them) as ONE array job"
                " through the API Lambda",
            ),
            LAMBDA,
        ),
    ),
    Command(
        "batch_via_api",
        "jobs:batch_via_api",
        "start a job through the flock's API Lambda",
        'shepard-tf batch_via_api --json_payload \'{"test1":"test1","test4":"0"}\'',
        (option("json_payload", required=True, metavar="JSON"), LAMBDA, JSON),
    ),
    Command(
        "query",
        "jobs:query",
        "show jobs from the flock's job table",
        "shepard-tf query --status running",
        (
            option("dynamo_db_to_query", metavar="TABLE"),
            option(
                "status",
                choices=(
                    "queued",
                    "running",
                    "finished",
                    "succeeded",
                    "failed",
                    "rejected",
                    "interrupted",
                    "cancelled",
                ),
            ),
            option(
                "batch",
                metavar="BATCH_ID",
                help="the jobs of one submission: counts by result (and their cost)",
            ),
            option(
                "watch",
                nargs="?",
                const=5.0,
                type=float,
                metavar="SECONDS",
                help="refresh every SECONDS (default 5) until Ctrl-C",
            ),
            option(
                "limit",
                type=int,
                metavar="N",
                help="the newest N jobs (default 100), read from the index a page at a time",
            ),
            switch("all", help="every job (all pages of the index; still never a Scan)"),
            JSON,
        ),
    ),
    Command(
        "retrieve",
        "results:retrieve",
        "download new results from the outputs bucket",
        "shepard-tf retrieve --directory_to_sync_s3_bucket_to ./results",
        (
            option("s3_bucket_for_results", metavar="BUCKET"),
            option("directory_to_sync_s3_bucket_to", metavar="FOLDER"),
            option(
                "tag",
                help="only the results of jobs with this TAG (named as the worker names them:"
                " other characters than letters, digits, . _ - become _)",
            ),
            switch("unzip", help="unzip each result beside its zip"),
            option(
                "parallel",
                type=int,
                metavar="N",
                help="results downloaded at once (default 8)",
            ),
        ),
    ),
    # -- operating jobs -------------------------------------------------------------------------
    Command(
        "wait",
        "ops:wait",
        "wait until a batch's (or the given) jobs are finished; exit 1 if any did not succeed",
        "shepard-tf wait --batch b-20261129T061500-3fa9c1 --timeout 3600",
        (
            Arg("jobs", nargs="*", metavar="JOB", help="job ids (an array job's id: its children)"),
            option("batch", metavar="BATCH_ID", help="every job of this submission"),
            option(
                "expect",
                type=int,
                metavar="N",
                help="wait until the batch has at least N jobs (zips the scheduler has yet to"
                " read); `batch` prints it",
            ),
            option(
                "timeout",
                type=float,
                metavar="SECONDS",
                help="give up (exit 1) after SECONDS (default: wait as long as it takes)",
            ),
            option(
                "interval",
                type=float,
                default=5.0,
                metavar="SECONDS",
                help="seconds between reads of the job table (default 5)",
            ),
            option("dynamo_db_to_query", metavar="TABLE"),
        ),
    ),
    Command(
        "why",
        "why:why",
        "why a job waits (what it asks against each compute environment) or why it failed",
        "shepard-tf why 3f2a9c1e-0b6d-4a57-9d0e-1c2b3a4d5e6f",
        (
            Arg("job", metavar="JOB", help="the job's id (UUID)"),
            option("dynamo_db_to_query", metavar="TABLE"),
            option(
                "state_dir",
                metavar="FOLDER",
                help="a local flock's state folder, for its job logs (default: the profile's)",
            ),
            JSON,
        ),
    ),
    Command(
        "cancel",
        "ops:cancel",
        "cancel jobs: queued ones leave the queue, running ones are stopped; recorded cancelled",
        "shepard-tf cancel --batch b-20261129T061500-3fa9c1 --reason 'wrong inputs'",
        (
            Arg("jobs", nargs="*", metavar="JOB", help="job ids (an array job's id: its children)"),
            option("batch", metavar="BATCH_ID", help="every unfinished job of this submission"),
            option("tag", metavar="TAG", help="every queued or running job with this TAG"),
            switch("all_queued", help="every job not yet running"),
            option("reason", metavar="TEXT", help="why (recorded in REASON with who)"),
            option("dynamo_db_to_query", metavar="TABLE"),
        ),
    ),
    Command(
        "logs",
        "ops:logs",
        "a job's log: CloudWatch Logs on AWS, the job's log file on a local flock",
        "shepard-tf logs 5e247595d5174e6488fee4436a433fa4 --follow",
        (
            Arg("job", metavar="JOB", help="the job's id"),
            switch("follow", help="keep printing new lines until the job is finished"),
            option("attempt", type=int, metavar="N", help="the log of Batch attempt N"),
            option(
                "log_group",
                metavar="GROUP",
                help="the CloudWatch log group (default: /aws/batch/<flock>)",
            ),
            option(
                "state_dir",
                metavar="DIR",
                help="a local flock's state folder (default: the profile's)",
            ),
            option("dynamo_db_to_query", metavar="TABLE"),
        ),
    ),
    Command(
        "secretify",
        "secrets:secretify",
        "store a folder of files as the flock's secret",
        "shepard-tf secretify --path_to_local_secrets ./secrets",
        (
            option("path_to_local_secrets", metavar="FOLDER"),
            option("secret_store", metavar="SECRET"),
        ),
    ),
    # -- the flock ------------------------------------------------------------------------------
    Command(
        "deploy",
        "flock:deploy",
        "build and push the images, apply the flock, write a profile",
        "shepard-tf deploy --cloudformation_stack_name testing "
        "--path_to_deployment_folder testing-setup",
        (
            option(
                "path_to_deployment_folder",
                metavar="DIR",
                help="folder with flock.yaml and code/, or a bundled example",
            ),
            option(
                "cloudformation_stack_name",
                metavar="FLOCK",
                help="profile name to write (default: the flock's name)",
            ),
            option("ecr_repo_to_push_to", metavar="REPO"),
            switch("skip_images", help="apply without building images"),
            AUTO_APPROVE,
        ),
    ),
    Command(
        "describe",
        "flock:describe",
        "show the flock's outputs and resources",
        "shepard-tf describe --cloudformation_stack_name testing",
        (FLOCK_FILE, FLOCK_NAME, JSON),
    ),
    Command(
        "destroy",
        "flock:destroy",
        "destroy the flock's infrastructure",
        "shepard-tf destroy --cloudformation_stack_name testing",
        (FLOCK_FILE, FLOCK_NAME, AUTO_APPROVE),
    ),
    Command(
        "render",
        "flock:render",
        "write the flock's tfvars (no AWS calls)",
        "shepard-tf render flock.yaml",
        (FLOCK_FILE_REQUIRED, FLOCK_NAME),
    ),
    Command(
        "plan",
        "flock:plan",
        "terraform plan for a flock; --out saves it for apply",
        "shepard-tf plan flock.yaml --out flock.tfplan",
        (
            FLOCK_FILE_REQUIRED,
            FLOCK_NAME,
            option(
                "out",
                metavar="PLAN",
                help="save the plan to this file, for `apply FLOCK_YAML PLAN`",
            ),
            switch("json", help="print the plan as `terraform show -json` does"),
        ),
    ),
    Command(
        "cost",
        "cost:cost",
        "the flock's fixed monthly cost from its plan: what is billed while idle, and why",
        "shepard-tf cost flock.yaml",
        (FLOCK_FILE_REQUIRED, FLOCK_NAME, JSON),
    ),
    Command(
        "apply",
        "flock:apply",
        "terraform apply for a flock (or a saved plan), then write its profile",
        "shepard-tf apply flock.yaml flock.tfplan",
        (
            FLOCK_FILE_REQUIRED,
            Arg(
                "plan_file",
                nargs="?",
                metavar="PLAN",
                help="a plan saved by `plan --out`: apply exactly that plan",
            ),
            FLOCK_NAME,
            AUTO_APPROVE,
            PROFILE_NAME,
        ),
    ),
    Command(
        "output",
        "flock:output",
        "the flock's Terraform outputs",
        "shepard-tf output flock.yaml",
        (FLOCK_FILE_REQUIRED, FLOCK_NAME, JSON),
    ),
    Command(
        "check",
        "check:check",
        "check a deployed flock end to end: its resources, then a canary job",
        "shepard-tf check flock.yaml --timeout 300",
        (
            FLOCK_FILE,
            FLOCK_NAME,
            switch("no_canary", help="check the resources only; run no canary job"),
            option(
                "timeout",
                type=float,
                default=120.0,
                metavar="SECONDS",
                help="how long to wait for the canary job (default 120)",
            ),
            switch("json", help="print the findings as JSON"),
        ),
    ),
    Command(
        "local",
        "local_cmds:local",
        "the local flock service: status, logs, stop; interrupt JOB simulates a Spot reclaim",
        "shepard-tf local status examples/testing-setup/flock.yaml",
        (
            Arg("action", choices=("status", "logs", "stop", "interrupt")),
            Arg(
                "flock_file",
                nargs="?",
                metavar="FLOCK_YAML|JOB",
                help="the flock's flock.yaml (default: the profile's); for interrupt, the job id",
            ),
            Arg("more", nargs="?", metavar="FLOCK_YAML", help="for interrupt: the flock.yaml"),
            option(
                "warning",
                type=float,
                default=2.0,
                metavar="SECONDS",
                help="for interrupt: seconds from the Spot notice to SIGTERM (default 2)",
            ),
            FLOCK_NAME,
            option(
                "state_dir",
                metavar="DIR",
                help="the flock's state folder (default: from the flock file)",
            ),
        ),
    ),
    # -- the tool -------------------------------------------------------------------------------
    Command(
        "check_update",
        "update:check_update",
        "compare this version with the newest on PyPI",
        "shepard-tf check_update --upgrade",
        (switch("upgrade", help="pip install --upgrade when newer"), JSON),
    ),
    Command(
        "help",
        "meta:help_command",
        "help for all commands or one",
        "shepard-tf help batch",
        (Arg("topic", nargs="?", metavar="COMMAND"),),
    ),
    Command(
        "completion",
        "meta:completion",
        "print a shell completion script",
        'eval "$(shepard-tf completion bash)"',
        (Arg("shell", choices=("bash", "zsh")),),
    ),
)

BY_NAME: Mapping[str, Command] = {command.name: command for command in COMMANDS}


# -- the parser, made from the declarations ---------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=36)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    for arg in COMMON:
        arg.add_to(group, suppress_default=True)
    return common


def _parser_options(command: Command) -> dict[str, Any]:
    return {
        "description": command.summary,
        "epilog": f"example:\n  {command.example}",
        "formatter_class": _Formatter,
    }


def command_parser(command: Command) -> argparse.ArgumentParser:
    """The parser of one command on its own (``shepard-tf help COMMAND`` prints its help)."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} {command.name}", parents=[_common()], **_parser_options(command)
    )
    for arg in command.args:
        arg.add_to(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (argparse-manpage builds the man page from this)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help="show tracebacks")
    common = _common()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        child = sub.add_parser(
            command.name, help=command.summary, parents=[common], **_parser_options(command)
        )
        for arg in command.args:
            arg.add_to(child)
    return parser


# -- dispatch ---------------------------------------------------------------------------------

Handler = Callable[[Any], int]


def load_handler(name: str) -> Handler:
    """Import the command's module (only now: the lazy command table) and return its handler."""
    command = BY_NAME[name]
    try:
        module = importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        if exc.name != command.module:
            raise
        raise ShepardError(
            f"while running {name}: this installation of shepard-tf has no {command.module}"
            f" module, so `{name}` is not available in it. Reinstall shepard-tf"
            " (pip install --force-reinstall shepard-tf, or make install in a checkout)."
        ) from None
    handler: Handler = getattr(module, command.function)
    return handler


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run one command; return its exit status (never raises but SystemExit from --help)."""
    env = os.environ if env is None else env
    err = stderr if stderr is not None else sys.stderr
    parser = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if isinstance(exc.code, int) else ExitStatus.BAD_INPUT
    if args.command is None:
        parser.print_help(stdout if stdout is not None else sys.stdout)
        return ExitStatus.BAD_INPUT
    debug = bool(getattr(args, "debug", False))
    try:
        from shepard.commands import Context

        context = Context.create(
            args, env=env, parser=parser, stdin=stdin, stdout=stdout, stderr=stderr
        )
        return int(load_handler(args.command)(context))
    except ShepardError as exc:
        if debug:
            import traceback

            traceback.print_exc(file=err)
        err.write(f"error: {exc.message}\n")
        return int(exc.exit_status)
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return int(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitStatus.OK)
    except Exception as exc:  # a bug: say so plainly, traceback only with --debug
        if debug:
            import traceback

            traceback.print_exc(file=err)
        else:
            err.write(
                f"error: while running {args.command}: unexpected {type(exc).__name__}: {exc}."
                " Run again with --debug for the traceback, and report it.\n"
            )
        return int(ExitStatus.FAILURE)


def run() -> None:  # pragma: no cover - the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
