"""Deterministic Lambda packages: same source, same bytes.

Each zip holds the Lambda's ``handler.py`` at its root (the function's handler is
``handler.handler``), the other modules of its folder (at the root too, and under
``lambdas/<name>/`` so absolute imports such as ``lambdas.scheduler.x`` also resolve), and the
shared job layer (``shepard/__init__.py`` + ``shepard/joblayer/``). boto3 comes from the Lambda
runtime. Entries are sorted, dated 1980-01-01, mode 0644, with no ``__pycache__`` or ``.pyc``, so
Terraform's ``source_code_hash`` changes only when the code does.

The root module keeps the packages of this checkout in ``terraform/flock/lambda/`` (decision
0008), so ``terraform/flock`` plus a tfvars file is a whole configuration; rebuild them after
editing ``lambdas/`` or ``shepard/joblayer/`` with ``python -m shepard.package`` (``make
lambda-zips``). A test checks that they match their source byte for byte.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import shepard
from shepard.errors import ShepardError

LAMBDAS = ("scheduler", "api", "events")
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--


def _repo_root() -> Path:
    return Path(shepard.__file__).resolve().parent.parent


def module_lambda_dir(terraform_dir: Path | None = None) -> Path:
    """Where the root module keeps its Lambda packages: ``<terraform>/flock/lambda``."""
    base = _repo_root() / "terraform" if terraform_dir is None else terraform_dir
    return base / "flock" / "lambda"


def _python_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path


def lambda_entries(name: str, root: Path | None = None) -> dict[str, bytes]:
    """The files of Lambda ``name``'s zip, by archive name."""
    root = _repo_root() if root is None else root
    folder = root / "lambdas" / name
    handler = folder / "handler.py"
    if not handler.is_file():
        raise ShepardError(
            f"while packaging the {name} Lambda: {handler} does not exist. "
            "Run shepard-tf from a complete checkout or installation of shepard-tf"
        )
    entries: dict[str, bytes] = {}
    for path in _python_files(folder):
        relative = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        entries[f"lambdas/{name}/{relative}"] = data
        if relative != "__init__.py":
            entries[relative] = data
    package_init = root / "lambdas" / "__init__.py"
    entries["lambdas/__init__.py"] = package_init.read_bytes() if package_init.is_file() else b""
    entries["shepard/__init__.py"] = (root / "shepard" / "__init__.py").read_bytes()
    for path in _python_files(root / "shepard" / "joblayer"):
        entries[path.relative_to(root).as_posix()] = path.read_bytes()
    return entries


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A zip of ``entries`` that depends only on their names and contents."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.external_attr = FILE_MODE << 16
            info.create_system = 3  # unix, so the mode above is read as such
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name], compresslevel=9)
    return buffer.getvalue()


def build_lambda_zips(out_dir: Path, *, root: Path | None = None) -> dict[str, Path]:
    """Write ``scheduler.zip``, ``api.zip`` and ``events.zip`` into ``out_dir``; a file is
    rewritten only when its bytes change (so its timestamp, too, says whether the code changed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    zips: dict[str, Path] = {}
    for name in LAMBDAS:
        data = zip_bytes(lambda_entries(name, root))
        path = out_dir / f"{name}.zip"
        if not path.is_file() or path.read_bytes() != data:
            partial = path.with_suffix(".zip.partial")
            partial.write_bytes(data)
            partial.replace(path)
        zips[name] = path
    return zips


def main(argv: list[str] | None = None) -> int:
    """Rebuild the packages kept in ``terraform/flock/lambda/``; print what changed."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    check_only = "--check" in args
    folder = module_lambda_dir()
    stale = [
        name
        for name in LAMBDAS
        if not (folder / f"{name}.zip").is_file()
        or (folder / f"{name}.zip").read_bytes() != zip_bytes(lambda_entries(name))
    ]
    if check_only:
        for name in stale:
            print(f"{folder / name}.zip does not match its source: run python -m shepard.package")
        return 1 if stale else 0
    build_lambda_zips(folder)
    for name in LAMBDAS:
        print(f"{folder / name}.zip {'rebuilt' if name in stale else 'unchanged'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
