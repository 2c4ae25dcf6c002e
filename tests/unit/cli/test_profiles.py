"""Profiles: the config folder, configure with answers, current profile, precedence."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from shepard.errors import BadInput, ShepardError
from shepard.profiles import (
    SEED_FIELDS,
    ProfileStore,
    Settings,
    config_dir,
    profile_from_outputs,
)
from tests.unit.cli.helpers import run


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"SHEPARD_CONFIG_DIR": str(tmp_path / "config"), "NO_COLOR": "1"}


def test_config_dir_precedence(tmp_path: Path) -> None:
    assert config_dir({"SHEPARD_CONFIG_DIR": "/a", "XDG_CONFIG_HOME": "/b"}) == Path("/a")
    assert config_dir({"XDG_CONFIG_HOME": "/b", "HOME": "/h"}) == Path("/b/shepard-tf")
    assert config_dir({"HOME": "/h"}) == Path("/h/.config/shepard-tf")


def test_configure_asks_the_seed_questions_and_keeps_defaults(env: dict[str, str]) -> None:
    answers = [f"value-{i}" for i in range(len(SEED_FIELDS))] + ["eu-west-1"]
    result = run(["configure", "project_a"], env, stdin="\n".join(answers) + "\n")
    assert result.code == 0, result.err
    for field in SEED_FIELDS:
        assert field in result.err  # every seed question was asked
    store = ProfileStore.from_env(env)
    saved = store.load("project_a")
    assert saved["shepard_account_number"] == "value-0"
    assert saved["shepard_lambda_to_invoke"] == f"value-{len(SEED_FIELDS) - 1}"
    assert saved["shepard_region"] == "eu-west-1"
    assert store.current() == "project_a"  # the first profile becomes current
    # Second run: Enter keeps every value, one answer changes the first field.
    result = run(["configure", "--profile_name", "project_a"], env, stdin="changed\n")
    assert result.code == 0
    assert "[value-1]" in result.err  # current values are shown as defaults
    again = store.load("project_a")
    assert again["shepard_account_number"] == "changed"
    assert again["shepard_dynamo_db_to_query"] == saved["shepard_dynamo_db_to_query"]
    mode = stat.S_IMODE(store.path("project_a").stat().st_mode)
    assert mode == 0o600


def test_set_check_clear_delete(env: dict[str, str]) -> None:
    store = ProfileStore.from_env(env)
    store.save("alpha", {"shepard_s3_bucket_to_upload_to": "in-a"})
    store.save("beta", {"shepard_s3_bucket_to_upload_to": "in-b"})
    assert run(["set_profile", "beta"], env).code == 0
    result = run(["check_profile"], env)
    assert "* beta" in result.out and "  alpha" in result.out and "in-b" in result.out
    data = json.loads(run(["check_profile", "--json"], env).out)
    assert data == {
        "profiles": ["alpha", "beta"],
        "current": "beta",
        "values": {"shepard_s3_bucket_to_upload_to": "in-b"},
    }
    assert run(["clear_profile_config"], env).code == 0
    assert "no profile is currently set" in run(["check_profile"], env).out
    assert run(["set_profile", "gamma"], env).code == 2
    run(["set_profile", "alpha"], env)
    assert run(["delete_profile", "alpha"], env).code == 0
    assert store.names() == ["beta"] and store.current() is None
    assert run(["delete_profile", "alpha"], env).code == 2


def test_profiles_dropped_into_where_am_i_are_picked_up(env: dict[str, str]) -> None:
    folder = Path(run(["where_am_i"], env).out.strip())
    folder.mkdir(parents=True)
    (folder / "imported.json").write_text(json.dumps({"shepard_secret_store": "s"}))
    assert run(["set_profile", "imported"], env).code == 0
    assert "shepard_secret_store" in run(["check_profile"], env).out


def test_damaged_profile_and_bad_names_are_clear_errors(env: dict[str, str]) -> None:
    store = ProfileStore.from_env(env)
    store.folder.mkdir(parents=True)
    (store.folder / "bad.json").write_text("[1, 2")
    result = run(["--debug", "check_profile", "--profile", "bad"], env)
    assert result.code == 2 and "not readable JSON" in result.err
    assert run(["configure", "../escape"], env, stdin="").code == 2
    with pytest.raises(BadInput):
        store.path("a/b")


def test_precedence_flag_over_profile_over_environment() -> None:
    settings = Settings(
        flags={"s3_bucket_to_upload_to": "from-flag"},
        profile={"shepard_s3_bucket_to_upload_to": "from-profile", "shepard_secret_store": "p"},
        env={
            "SHEPARD_S3_BUCKET_TO_UPLOAD_TO": "e",
            "SHEPARD_SECRET_STORE": "e",
            "SHEPARD_DYNAMO_DB_TO_QUERY": "from-env",
        },
    )
    assert settings.get("s3_bucket_to_upload_to") == "from-flag"
    assert settings.get("secret_store") == "p"
    assert settings.get("dynamo_db_to_query") == "from-env"
    assert settings.get("lambda_to_invoke") is None
    with pytest.raises(BadInput, match="--lambda_to_invoke"):
        settings.require("lambda_to_invoke", "testing")


def test_profile_from_outputs() -> None:
    outputs = {
        "region": "us-east-1",
        "cli_profile": {"shepard_s3_bucket_to_upload_to": "in", "shepard_efs": None},
    }
    values = profile_from_outputs(
        outputs, flock_file=Path("/f/flock.yaml"), endpoint_url="http://e"
    )
    assert values == {
        "shepard_s3_bucket_to_upload_to": "in",
        "shepard_region": "us-east-1",
        "shepard_flock_file": "/f/flock.yaml",
        "shepard_endpoint_url": "http://e",
    }
    with pytest.raises(ShepardError, match="cli_profile"):
        profile_from_outputs({}, flock_file=None, endpoint_url=None)
