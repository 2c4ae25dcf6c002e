"""The command line itself: parsing, the seed's flag names, help, exit codes, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shepard.cli import BY_NAME, COMMANDS, Command, build_parser, load_handler, main
from tests.unit.cli.helpers import run

ROOT = Path(__file__).resolve().parents[3]
NAMES = [command.name for command in COMMANDS]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"SHEPARD_CONFIG_DIR": str(tmp_path / "config"), "NO_COLOR": "1"}


def test_every_command_is_in_the_parser_and_has_an_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    for name in NAMES:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "example:" in text and "shepard-tf " in text, name


def test_each_command_is_declared_once_with_a_handler_under_shepard_commands() -> None:
    assert len(NAMES) == len(set(NAMES)) == len(BY_NAME)
    for command in COMMANDS:
        assert command.module.startswith("shepard.commands.") and command.function, command
        assert command.summary and command.example.startswith(("shepard-tf ", "eval ")), command
        dests = [arg.dest for arg in command.args]
        assert len(dests) == len(set(dests)), command.name


def test_every_handler_is_a_function_of_its_module() -> None:
    for name in NAMES:
        assert callable(load_handler(name)), name


def test_completion_offers_each_declared_option(env: dict[str, str]) -> None:
    script = run(["completion", "bash"], env).out
    for command in COMMANDS:
        line = next(x for x in script.splitlines() if x.strip().startswith(f"{command.name})"))
        for arg in command.args:
            for option in arg.option_strings:
                assert f" {option} " in line.replace('"', " "), (command.name, option)


def test_a_command_whose_module_is_missing_is_a_clear_error(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = Command("where_am_i", "no_such_module:run", "x", "shepard-tf where_am_i")
    monkeypatch.setitem(BY_NAME, "where_am_i", missing)  # type: ignore[index]
    result = run(["where_am_i"], env)
    assert result.code == 1 and "Traceback" not in result.err
    assert "no shepard.commands.no_such_module module" in result.err
    assert "Reinstall shepard-tf" in result.err


def test_plan_apply_and_check_flags() -> None:
    parser = build_parser()
    plan = parser.parse_args(["plan", "flock.yaml", "--out", "flock.tfplan", "--json"])
    assert (plan.flock_file, plan.out, plan.json) == ("flock.yaml", "flock.tfplan", True)
    plain = parser.parse_args(["plan", "flock.yaml"])
    assert (plain.out, plain.json) == (None, False)
    apply = parser.parse_args(["apply", "flock.yaml", "flock.tfplan", "--auto-approve"])
    assert (apply.flock_file, apply.plan_file, apply.auto_approve) == (
        "flock.yaml",
        "flock.tfplan",
        True,
    )
    assert parser.parse_args(["apply", "flock.yaml"]).plan_file is None
    check = parser.parse_args(["check"])
    assert (check.flock_file, check.no_canary, check.timeout, check.json) == (
        None,
        False,
        120.0,
        False,
    )
    given = parser.parse_args(["check", "f.yaml", "--no-canary", "--timeout", "5", "--json"])
    assert (given.flock_file, given.no_canary, given.timeout, given.json) == (
        "f.yaml",
        True,
        5.0,
        True,
    )
    assert parser.parse_args(["check", "--no_canary"]).no_canary is True
    assert BY_NAME["check"].handler == "check:check"


@pytest.mark.parametrize(
    "argv",
    [
        ["batch_via_api", "--json_payload", '{"a": "1"}'],
        ["batch_via_api", "--json-payload", '{"a": "1"}'],
        ["batch", "--path_to_local_folder_to_batch", "/x", "--zip-name-override", "z"],
        ["deploy", "--cloudformation_stack_name", "testing", "--path_to_deployment_folder", "t"],
        ["destroy", "--cloudformation-stack-name", "testing"],
        ["secretify", "--path_to_local_secrets", "/s"],
        [
            "set_role",
            "--role_to_assume_to_target_account",
            "r",
            "--shepard_account_number",
            "123456789012",
            "--mfa_token",
            "123456",
            "--serial_number",
            "arn:x",
            "--dont_assume",
            "False",
        ],
        ["query", "--dont-assume"],
    ],
)
def test_seed_and_dashed_flag_names_parse(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]


def test_dont_assume_takes_the_seeds_boolean() -> None:
    parser = build_parser()
    assert parser.parse_args(["query", "--dont_assume", "False"]).dont_assume is False
    assert parser.parse_args(["query", "--dont_assume"]).dont_assume is True
    assert not hasattr(parser.parse_args(["query"]), "dont_assume")


def test_common_options_work_after_the_command(env: dict[str, str]) -> None:
    args = build_parser().parse_args(["where_am_i", "--region", "eu-west-1", "--debug"])
    assert args.region == "eu-west-1" and args.debug is True


def test_bad_payload_is_a_message_and_exit_2_without_traceback(env: dict[str, str]) -> None:
    result = run(["batch_via_api", "--json_payload", '{"UUID": "x"}'], env)
    assert result.code == 2
    assert "while reading --json_payload" in result.err and "reserved" in result.err
    assert "Traceback" not in result.err
    result = run(["batch_via_api", "--json_payload", "{not json"], env)
    assert result.code == 2 and "not valid JSON" in result.err


def test_missing_setting_names_the_flag_the_profile_and_the_variable(env: dict[str, str]) -> None:
    result = run(["batch_via_api", "--json_payload", '{"a": "1"}'], env)
    assert result.code == 2
    assert "--lambda_to_invoke" in result.err and "SHEPARD_LAMBDA_TO_INVOKE" in result.err


def test_usage_error_is_exit_2(env: dict[str, str]) -> None:
    assert run(["no_such_command"], env).code == 2
    assert run([], env).code == 2


def test_debug_shows_the_traceback(env: dict[str, str]) -> None:
    result = run(["--debug", "set_profile", "missing"], env)
    assert result.code == 2 and "Traceback" in result.err
    assert "no profile 'missing'" in result.err


def test_keyboard_interrupt_is_130(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import shepard.commands.profile_cmds as profile_cmds

    def interrupted(ctx: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(profile_cmds, "where_am_i", interrupted)
    result = run(["where_am_i"], env)
    assert result.code == 130 and "Traceback" not in result.err


def test_unexpected_error_says_run_with_debug(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shepard.commands.profile_cmds as profile_cmds

    def broken(ctx: object) -> int:
        raise ValueError("boom")

    monkeypatch.setattr(profile_cmds, "where_am_i", broken)
    result = run(["where_am_i"], env)
    assert result.code == 1 and "--debug" in result.err and "boom" in result.err
    assert "Traceback" not in result.err


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, io, contextlib\n"
        "from shepard.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "    main(['batch', '--help'])\n"
        "heavy = {'boto3', 'botocore', 'rich', 'docker', 'jinja2', 'yaml'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_command_and_completion(env: dict[str, str]) -> None:
    result = run(["help", "batch"], env)
    assert result.code == 0 and "--path_to_local_folder_to_batch" in result.out
    assert run(["help", "nope"], env).code == 2
    script = run(["completion", "bash"], env).out
    assert "complete -o filenames -F _shepard_tf shepard-tf" in script
    assert "batch_via_api" in script and "--json_payload" in script
    bash = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert bash.returncode == 0, bash.stderr
    assert "bashcompinit" in run(["completion", "zsh"], env).out


def test_check_update_says_when_pypi_is_unreachable(env: dict[str, str]) -> None:
    env = {**env, "SHEPARD_PYPI_URL": "http://127.0.0.1:9/pypi/shepard-tf/json"}
    result = run(["check_update", "--json"], env)
    assert result.code == 0
    data = json.loads(result.out)
    assert data["latest"] is None and data["update_available"] is False
    assert "could not be reached" in run(["check_update"], env).out


def test_console_script_help_runs_as_a_subprocess() -> None:
    script = ROOT / ".venv" / "bin" / "shepard-tf"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "batch_via_api" in result.stdout and "Exit codes" in result.stdout


def test_main_returns_int_for_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "shepard-tf" in capsys.readouterr().out


def test_man_page_builds_from_build_parser(tmp_path: Path) -> None:
    tool = ROOT / ".venv" / "bin" / "argparse-manpage"  # a dev dependency: make install
    page = tmp_path / "shepard-tf.1"
    subprocess.run(
        [
            str(tool),
            "--pyfile",
            str(ROOT / "shepard" / "cli.py"),
            "--function",
            "build_parser",
            "--prog",
            "shepard-tf",
            "--project-name",
            "shepard-tf",
            "--output",
            str(page),
        ],
        check=True,
        capture_output=True,
    )
    text = page.read_text().replace("\\-", "-")
    for name in NAMES:
        assert f"shepard-tf\\fR \\fI\\,{name}" in text.replace("\\_", "_") or name in text, name
    assert "--path_to_local_folder_to_batch" in text.replace("\\_", "_")


def test_local_status_of_a_flock_that_is_not_running(env: dict[str, str], tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    result = run(["local", "status", "--state_dir", str(state)], env)
    assert result.code == 1 and "stopped" in result.out
    assert "not running" in run(["local", "stop", "--state-dir", str(state)], env).out
    assert run(["local", "logs", "--state_dir", str(state)], env).code == 0


def test_render_writes_the_tfvars_without_aws(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "SHEPARD_STATE_DIR": str(tmp_path / "state")}
    flock = ROOT / "examples" / "testing-setup" / "flock.yaml"
    result = run(["render", str(flock)], env)
    assert result.code == 0, result.err
    tfvars = Path(result.out.strip())
    assert tfvars.name == "flock.auto.tfvars.json" and tmp_path in tfvars.parents
    assert json.loads(tfvars.read_text())["name"] == "testing"
    missing = run(["render", str(tmp_path / "nope.yaml")], env)
    assert missing.code == 2 and "does not exist" in missing.err


def test_deploy_folder_bare_name_means_a_bundled_example(tmp_path: Path) -> None:
    from shepard.commands.flock import EXAMPLES, deployment_folder
    from shepard.errors import BadInput

    assert deployment_folder("testing-setup") == EXAMPLES / "testing-setup"
    assert deployment_folder(str(tmp_path)) == tmp_path
    with pytest.raises(BadInput, match=r"bundled: .*testing-setup"):
        deployment_folder("no-such-setup")
