"""The ``shepard-tf`` command line: parse, dispatch, map errors to exit codes. Nothing else.

Every command of the original Shepard CLI is here with the seed's flag names (``--json_payload``)
and their dashed forms (``--json-payload``), plus the Terraform verbs. Each command lives in a
module of :mod:`shepard.commands` that is imported only when that command runs, so
``shepard-tf --help`` never loads boto3, rich, docker, jinja2 or yaml.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from shepard import __version__
from shepard.errors import ExitStatus, ShepardError

PROG = "shepard-tf"

# ONE table from command name to handler ("module:function" under shepard.commands).
COMMANDS: dict[str, str] = {
    "auto_configure": "profile_cmds:auto_configure",
    "batch": "jobs:batch",
    "batch_via_api": "jobs:batch_via_api",
    "check_profile": "profile_cmds:check_profile",
    "check_role": "roles:check_role",
    "check_update": "update:check_update",
    "clear_profile_config": "profile_cmds:clear_profile_config",
    "configure": "profile_cmds:configure",
    "delete_profile": "profile_cmds:delete_profile",
    "deploy": "flock:deploy",
    "describe": "flock:describe",
    "destroy": "flock:destroy",
    "query": "jobs:query",
    "release_role": "roles:release_role",
    "retrieve": "results:retrieve",
    "secretify": "secrets:secretify",
    "set_profile": "profile_cmds:set_profile",
    "set_role": "roles:set_role",
    "where_am_i": "profile_cmds:where_am_i",
    "help": "meta:help_command",
    "render": "flock:render",
    "plan": "flock:plan",
    "apply": "flock:apply",
    "output": "flock:output",
    "local": "local_cmds:local",
    "completion": "meta:completion",
}


def _flag(name: str) -> list[str]:
    """``--json_payload`` and ``--json-payload``: the seed's spelling and the dashed one."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    return names


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"true", "yes", "1", "on"}:
        return True
    if lowered in {"false", "no", "0", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, not {text!r}")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=36)


def _common() -> argparse.ArgumentParser:
    """Options every command takes (defaults suppressed, so they may come before or after)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    s = argparse.SUPPRESS
    group.add_argument("--debug", action="store_true", default=s, help="show tracebacks")
    group.add_argument(
        *_flag("profile"),
        *_flag("profile_name_to_use"),
        dest="profile",
        default=s,
        metavar="NAME",
        help="shepard-tf profile to use for this command (default: the current one)",
    )
    group.add_argument(
        *_flag("aws_profile"),
        dest="aws_profile",
        default=s,
        metavar="NAME",
        help="AWS CLI profile (shared config or SSO) for credentials",
    )
    group.add_argument("--region", default=s, help="AWS region (default: profile, then AWS config)")
    group.add_argument(
        *_flag("role_to_assume_to_target_account"),
        dest="role_to_assume_to_target_account",
        default=s,
        metavar="ROLE",
        help="role name or ARN to assume for this command",
    )
    group.add_argument(
        *_flag("account_number"),
        *_flag("shepard_account_number"),
        dest="account_number",
        default=s,
        metavar="ACCOUNT",
        help="12-digit account the role is in",
    )
    group.add_argument(*_flag("mfa_token"), dest="mfa_token", default=s, metavar="CODE")
    group.add_argument(
        *_flag("serial_number"),
        dest="serial_number",
        default=s,
        metavar="MFA_ARN",
        help="MFA device serial number (ARN)",
    )
    group.add_argument(
        *_flag("dont_assume"),
        dest="dont_assume",
        nargs="?",
        const=True,
        type=_bool,
        default=s,
        metavar="BOOL",
        help="True (default): use your own credentials; False: assume the role",
    )
    return common


def _add(
    sub: Any, common: argparse.ArgumentParser, name: str, summary: str, example: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=f"example:\n  {example}",
        parents=[common],
        formatter_class=_Formatter,
    )
    return parser


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _flock_file(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "flock_file",
        nargs=None if required else "?",
        metavar="FLOCK_YAML",
        help="the flock's flock.yaml" + ("" if required else " (default: the profile's)"),
    )
    parser.add_argument(
        *_flag("cloudformation_stack_name"),
        dest="cloudformation_stack_name",
        metavar="FLOCK",
        help="flock name (the seed's stack name): its profile's flock file is used",
    )


def _auto_approve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        *_flag("auto_approve"),
        dest="auto_approve",
        action="store_true",
        help="do not ask before changing infrastructure",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (argparse-manpage builds the man page from this)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Turn any container into a batch workflow on AWS Batch, deployed with"
        " Terraform. Exit codes: 0 ok, 1 failure, 2 bad input, 3 AWS/Terraform error,"
        " 130 interrupted.",
        epilog='example:\n  shepard-tf batch_via_api --json_payload \'{"test1":"test1"}\'\n\n'
        "Run `shepard-tf COMMAND --help` for a command's options.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help="show tracebacks")
    common = _common()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # -- profiles -----------------------------------------------------------------------------
    p = _add(
        sub,
        common,
        "configure",
        "create or edit a profile by answering prompts",
        "shepard-tf configure project_a",
    )
    p.add_argument("name", nargs="?", metavar="PROFILE")
    p.add_argument(*_flag("profile_name"), dest="profile_name", metavar="PROFILE")
    p = _add(
        sub,
        common,
        "auto_configure",
        "write a profile from a deployed flock's outputs",
        "shepard-tf auto_configure examples/testing-setup/flock.yaml",
    )
    _flock_file(p)
    p.add_argument(
        *_flag("profile_name"),
        dest="profile_name",
        metavar="PROFILE",
        help="profile to write (default: the flock's name)",
    )
    p = _add(
        sub,
        common,
        "set_profile",
        "make a profile the current one",
        "shepard-tf set_profile project_a",
    )
    p.add_argument("name", nargs="?", metavar="PROFILE")
    p.add_argument(*_flag("profile_name"), dest="profile_name", metavar="PROFILE")
    p = _add(
        sub,
        common,
        "check_profile",
        "list profiles (current marked) and its values",
        "shepard-tf check_profile",
    )
    _json(p)
    _add(
        sub,
        common,
        "clear_profile_config",
        "leave no profile current",
        "shepard-tf clear_profile_config",
    )
    p = _add(
        sub, common, "delete_profile", "delete a profile", "shepard-tf delete_profile project_a"
    )
    p.add_argument("name", nargs="?", metavar="PROFILE")
    p.add_argument(*_flag("profile_name"), dest="profile_name", metavar="PROFILE")
    _add(
        sub,
        common,
        "where_am_i",
        "print the folder that holds the profiles",
        "shepard-tf where_am_i",
    )

    # -- roles --------------------------------------------------------------------------------
    p = _add(
        sub,
        common,
        "set_role",
        "assume a role once and use it for every command",
        "shepard-tf set_role --role_to_assume_to_target_account Admin "
        "--shepard_account_number 123456789012 --serial_number "
        "arn:aws:iam::111111111111:mfa/me --mfa_token 123456",
    )
    p.add_argument(*_flag("duration_seconds"), dest="duration_seconds", type=int, default=3600)
    p = _add(sub, common, "check_role", "show the role set by set_role", "shepard-tf check_role")
    _json(p)
    _add(sub, common, "release_role", "forget the role set by set_role", "shepard-tf release_role")

    # -- jobs ---------------------------------------------------------------------------------
    p = _add(
        sub,
        common,
        "batch",
        "zip a folder with inputs.json and upload it: one job each",
        "shepard-tf batch --path_to_local_folder_to_batch ./job1",
    )
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="more folders to batch")
    p.add_argument(
        *_flag("path_to_local_folder_to_batch"),
        dest="path_to_local_folder_to_batch",
        metavar="FOLDER",
        action="append",
    )
    p.add_argument(
        *_flag("s3_bucket_to_upload_to"), dest="s3_bucket_to_upload_to", metavar="BUCKET"
    )
    p.add_argument(
        *_flag("zip_name_override"),
        dest="zip_name_override",
        metavar="NAME",
        help="name of the uploaded zip (one folder only)",
    )
    p.add_argument(
        "--array",
        nargs="+",
        metavar="FILE_OR_DIR",
        help="submit these inputs (JSON files, or folders of them) as ONE array job"
        " through the API Lambda",
    )
    p.add_argument(*_flag("lambda_to_invoke"), dest="lambda_to_invoke", metavar="FUNCTION")
    p = _add(
        sub,
        common,
        "batch_via_api",
        "start a job through the flock's API Lambda",
        'shepard-tf batch_via_api --json_payload \'{"test1":"test1","test4":"0"}\'',
    )
    p.add_argument(*_flag("json_payload"), dest="json_payload", required=True, metavar="JSON")
    p.add_argument(*_flag("lambda_to_invoke"), dest="lambda_to_invoke", metavar="FUNCTION")
    _json(p)
    p = _add(
        sub,
        common,
        "query",
        "show jobs from the flock's job table",
        "shepard-tf query --status running",
    )
    p.add_argument(*_flag("dynamo_db_to_query"), dest="dynamo_db_to_query", metavar="TABLE")
    p.add_argument(
        "--status",
        choices=["queued", "running", "finished", "succeeded", "failed", "rejected", "interrupted"],
    )
    p.add_argument(
        "--watch",
        nargs="?",
        const=5.0,
        type=float,
        metavar="SECONDS",
        help="refresh every SECONDS (default 5) until Ctrl-C",
    )
    _json(p)
    p = _add(
        sub,
        common,
        "retrieve",
        "download new results from the outputs bucket",
        "shepard-tf retrieve --directory_to_sync_s3_bucket_to ./results",
    )
    p.add_argument(*_flag("s3_bucket_for_results"), dest="s3_bucket_for_results", metavar="BUCKET")
    p.add_argument(
        *_flag("directory_to_sync_s3_bucket_to"),
        dest="directory_to_sync_s3_bucket_to",
        metavar="FOLDER",
    )
    p.add_argument("--tag", help="only results whose name starts with TAG_")
    p.add_argument("--unzip", action="store_true", help="unzip each result beside its zip")
    p = _add(
        sub,
        common,
        "secretify",
        "store a folder of files as the flock's secret",
        "shepard-tf secretify --path_to_local_secrets ./secrets",
    )
    p.add_argument(*_flag("path_to_local_secrets"), dest="path_to_local_secrets", metavar="FOLDER")
    p.add_argument(*_flag("secret_store"), dest="secret_store", metavar="SECRET")

    # -- the flock ----------------------------------------------------------------------------
    p = _add(
        sub,
        common,
        "deploy",
        "build and push the images, apply the flock, write a profile",
        "shepard-tf deploy --cloudformation_stack_name testing "
        "--path_to_deployment_folder testing-setup",
    )
    p.add_argument(
        *_flag("path_to_deployment_folder"),
        dest="path_to_deployment_folder",
        metavar="DIR",
        help="folder with flock.yaml and code/, or a bundled example",
    )
    p.add_argument(
        *_flag("cloudformation_stack_name"),
        dest="cloudformation_stack_name",
        metavar="FLOCK",
        help="profile name to write (default: the flock's name)",
    )
    p.add_argument(*_flag("ecr_repo_to_push_to"), dest="ecr_repo_to_push_to", metavar="REPO")
    p.add_argument(
        *_flag("skip_images"),
        dest="skip_images",
        action="store_true",
        help="apply without building images",
    )
    _auto_approve(p)
    p = _add(
        sub,
        common,
        "describe",
        "show the flock's outputs and resources",
        "shepard-tf describe --cloudformation_stack_name testing",
    )
    _flock_file(p)
    _json(p)
    p = _add(
        sub,
        common,
        "destroy",
        "destroy the flock's infrastructure",
        "shepard-tf destroy --cloudformation_stack_name testing",
    )
    _flock_file(p)
    _auto_approve(p)
    p = _add(
        sub,
        common,
        "render",
        "write the flock's tfvars (no AWS calls)",
        "shepard-tf render flock.yaml",
    )
    _flock_file(p, required=True)
    p = _add(sub, common, "plan", "terraform plan for a flock", "shepard-tf plan flock.yaml")
    _flock_file(p, required=True)
    p = _add(
        sub,
        common,
        "apply",
        "terraform apply for a flock, then write its profile",
        "shepard-tf apply flock.yaml --auto-approve",
    )
    _flock_file(p, required=True)
    _auto_approve(p)
    p.add_argument(*_flag("profile_name"), dest="profile_name", metavar="PROFILE")
    p = _add(sub, common, "output", "the flock's Terraform outputs", "shepard-tf output flock.yaml")
    _flock_file(p, required=True)
    _json(p)

    p = _add(
        sub,
        common,
        "local",
        "the local flock service: status, logs, stop",
        "shepard-tf local status examples/testing-setup/flock.yaml",
    )
    p.add_argument("action", choices=["status", "logs", "stop"])
    _flock_file(p)
    p.add_argument(
        *_flag("state_dir"),
        dest="state_dir",
        metavar="DIR",
        help="the flock's state folder (default: from the flock file)",
    )

    # -- the tool -----------------------------------------------------------------------------
    p = _add(
        sub,
        common,
        "check_update",
        "compare this version with the newest on PyPI",
        "shepard-tf check_update --upgrade",
    )
    p.add_argument("--upgrade", action="store_true", help="pip install --upgrade when newer")
    _json(p)
    p = _add(sub, common, "help", "help for all commands or one", "shepard-tf help batch")
    p.add_argument("topic", nargs="?", metavar="COMMAND")
    p = _add(
        sub,
        common,
        "completion",
        "print a shell completion script",
        'eval "$(shepard-tf completion bash)"',
    )
    p.add_argument("shell", choices=["bash", "zsh"])
    return parser


Handler = Callable[[Any], int]


def load_handler(command: str) -> Handler:
    module_name, _, function = COMMANDS[command].partition(":")
    module = importlib.import_module(f"shepard.commands.{module_name}")
    handler: Handler = getattr(module, function)
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
