"""Deterministic Lambda packages: same source, same bytes."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from shepard.errors import ShepardError
from shepard.package import build_lambda_zips, module_lambda_dir


def make_tree(root: Path) -> Path:
    """A checkout with the Lambdas, a helper module, the job layer, and build litter."""
    for name in ("scheduler", "api", "events"):
        folder = root / "lambdas" / name
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
        (folder / "handler.py").write_text(f"def handler(event, context):\n    return {name!r}\n")
        (folder / "__pycache__").mkdir()
        (folder / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0junk")
    (root / "lambdas" / "__init__.py").write_text("")
    (root / "lambdas" / "scheduler" / "events.py").write_text("X = 1\n")
    (root / "shepard" / "joblayer").mkdir(parents=True)
    (root / "shepard" / "__init__.py").write_text('__version__ = "0"\n')
    (root / "shepard" / "cli.py").write_text("import rich\n")  # must not be packaged
    (root / "shepard" / "joblayer" / "__init__.py").write_text("")
    (root / "shepard" / "joblayer" / "records.py").write_text("A = 1\n")
    (root / "shepard" / "joblayer" / "stray.pyc").write_bytes(b"\0")
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_zip_layout(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    zips = build_lambda_zips(tmp_path / "out", root=root)
    assert set(zips) == {"scheduler", "api", "events"}
    with zipfile.ZipFile(zips["scheduler"]) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert set(names) == {
            "events.py",
            "handler.py",
            "lambdas/__init__.py",
            "lambdas/scheduler/__init__.py",
            "lambdas/scheduler/events.py",
            "lambdas/scheduler/handler.py",
            "shepard/__init__.py",
            "shepard/joblayer/__init__.py",
            "shepard/joblayer/records.py",
        }
        assert (
            archive.read("handler.py") == b"def handler(event, context):\n    return 'scheduler'\n"
        )
        for info in archive.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert (info.external_attr >> 16) & 0o777 == 0o644
    with zipfile.ZipFile(zips["api"]) as archive:
        assert "events.py" not in archive.namelist()
        assert archive.read("handler.py").endswith(b"return 'api'\n")


def test_same_source_same_bytes_and_a_change_changes_the_hash(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    first = build_lambda_zips(tmp_path / "one", root=root)
    # Different file times and a fresh copy of the tree must not matter.
    os.utime(root / "lambdas" / "api" / "handler.py", (1_000_000_000, 1_000_000_000))
    second = build_lambda_zips(tmp_path / "two", root=root)
    assert sha256(first["api"]) == sha256(second["api"])
    assert sha256(first["scheduler"]) == sha256(second["scheduler"])

    (root / "shepard" / "joblayer" / "records.py").write_text("A = 2\n")
    third = build_lambda_zips(tmp_path / "three", root=root)
    assert sha256(third["api"]) != sha256(first["api"])
    assert sha256(third["scheduler"]) != sha256(first["scheduler"])


def test_unchanged_zip_is_not_rewritten(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    out = tmp_path / "out"
    zips = build_lambda_zips(out, root=root)
    os.utime(zips["api"], (1_000_000_000, 1_000_000_000))
    build_lambda_zips(out, root=root)
    assert zips["api"].stat().st_mtime == 1_000_000_000
    (root / "lambdas" / "api" / "handler.py").write_text("def handler(e, c):\n    return 1\n")
    build_lambda_zips(out, root=root)
    assert zips["api"].stat().st_mtime != 1_000_000_000
    assert sorted(p.name for p in out.iterdir()) == ["api.zip", "events.zip", "scheduler.zip"]


def test_missing_handler_is_a_clear_error(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    (root / "lambdas" / "api" / "handler.py").unlink()
    with pytest.raises(
        ShepardError, match=r"while packaging the api Lambda: .*handler.py does not"
    ):
        build_lambda_zips(tmp_path / "out", root=root)


def test_the_repository_lambdas_package_deterministically(tmp_path: Path) -> None:
    one = build_lambda_zips(tmp_path / "one")
    two = build_lambda_zips(tmp_path / "two")
    assert {k: sha256(v) for k, v in one.items()} == {k: sha256(v) for k, v in two.items()}
    with zipfile.ZipFile(one["api"]) as archive:
        assert "handler.py" in archive.namelist()
        assert "shepard/joblayer/records.py" in archive.namelist()
        assert not [n for n in archive.namelist() if "__pycache__" in n or n.endswith(".pyc")]


def test_the_root_modules_lambda_packages_match_their_source_byte_for_byte(
    tmp_path: Path,
) -> None:
    """terraform/flock/lambda/*.zip are what Terraform alone deploys (decision 0008)."""
    kept = module_lambda_dir()
    built = build_lambda_zips(tmp_path / "now")
    for name, path in built.items():
        committed = kept / f"{name}.zip"
        assert committed.is_file(), f"{committed} is missing: run python -m shepard.package"
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} does not match lambdas/{name} and shepard/joblayer: "
            "run python -m shepard.package (make lambda-zips) and commit the packages"
        )
