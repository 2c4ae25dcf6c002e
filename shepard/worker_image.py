"""Build the worker image (worker/Dockerfile) with the Docker SDK, offline when it must be.

:func:`build_worker_image` is what deploy paths call (AWS and the local flock alike):

- the build context is a small folder with only what the Dockerfile copies (``WORKER_FILES``),
  not the whole repository;
- with ``wheels`` (the default when the base image is on this machine, as the local flock's
  offline ``shepard-base:bookworm`` is) the wheels of ``worker/requirements.txt`` are downloaded
  on the host with pip, for the base image's Python and machine, and put in the context: the
  build installs them with no index, so no network is needed inside the build. They are cached
  under ``~/.cache/shepard-tf/wheels/<hash of the requirement set>``: one download per
  requirement set, Python version and machine;
- without wheels (a user building on ``python:3.12-slim``) pip in the build uses the index.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shepard.errors import BackendError, BadInput

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "worker/Dockerfile"
REQUIREMENTS = "worker/requirements.txt"
# Everything worker/Dockerfile copies, relative to the repository root (its build context).
WORKER_FILES = (
    DOCKERFILE,
    REQUIREMENTS,
    "shepard/__init__.py",
    "shepard/errors.py",
    "shepard/joblayer",
    "shepard/cost/prices.json",
    "worker/shepard_worker",
)
WHEELS_FOLDER = "wheels"  # in the prepared context; passed as the WHEELS_DIR build argument
_COMPLETE = ".complete"
_PYTHON_PROBE = (
    "import platform, sys; "
    "print(f'{sys.version_info[0]}.{sys.version_info[1]}', platform.machine())"
)
_VERSION = re.compile(r"^3\.\d+$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

Progress = Callable[[str], None]


def cache_root() -> Path:
    """Where downloaded wheels are kept: ``$XDG_CACHE_HOME/shepard-tf/wheels`` (``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shepard-tf" / "wheels"


def requirement_lines(repo_root: Path = REPO_ROOT) -> list[str]:
    """The requirements of worker/requirements.txt, comments and blank lines dropped."""
    text = (repo_root / REQUIREMENTS).read_text(encoding="utf-8")
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [line for line in lines if line]


def wheel_key(requirements: list[str], python_version: str, machine: str) -> str:
    """The cache key of one wheel set: the requirements, the Python version and the machine."""
    text = "\n".join([*sorted(requirements), f"python={python_version}", f"machine={machine}"])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def image_python(client: Any, image: str) -> tuple[str, str]:
    """``("3.11", "x86_64")``: the Python version and machine of ``image`` (run once, removed)."""
    import docker

    try:
        output = client.containers.run(
            image, ["python3", "-c", _PYTHON_PROBE], remove=True, network_mode="none"
        )
    except docker.errors.DockerException as error:
        raise BackendError(
            f"while reading the Python version of the base image {image}: {error}. The base "
            "image needs python3 (and its venv module); build shepard-base:bookworm with "
            "`scripts/engine.sh base-image`, or pass another base image."
        ) from None
    words = output.decode("utf-8", "replace").split()
    if len(words) != 2 or not _VERSION.match(words[0]):
        raise BackendError(
            f"while reading the Python version of the base image {image}: it printed "
            f"{output[:200]!r}. The base image needs a python3 of version 3.11 or later."
        )
    return words[0], words[1]


def _pip_platform_args(python_version: str, machine: str) -> list[str]:
    """pip download options for another interpreter than this one (manylinux wheels)."""
    here = (f"{sys.version_info[0]}.{sys.version_info[1]}", platform.machine())
    if (python_version, machine) == here:
        return []
    abi = "cp" + python_version.replace(".", "")
    args = ["--python-version", python_version, "--implementation", "cp"]
    args += ["--abi", abi, "--abi", "abi3", "--abi", "none"]
    for tag in ("manylinux2014", "manylinux_2_17", "manylinux_2_28", "manylinux1"):
        args += ["--platform", f"{tag}_{machine}"]
    return args


def download_wheels(
    requirements: list[str],
    *,
    python_version: str,
    machine: str,
    progress: Progress,
    cache: Path | None = None,
    pip: tuple[str, ...] = (sys.executable, "-m", "pip"),
) -> Path:
    """The folder of wheels for ``requirements`` (downloaded once per requirement set)."""
    folder = (cache or cache_root()) / wheel_key(requirements, python_version, machine)
    if (folder / _COMPLETE).is_file():
        progress(f"worker image: using the cached wheels in {folder}")
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    progress(f"worker image: downloading the wheels of {', '.join(requirements)}")
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
    command = [
        *pip,
        "download",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(staging),
        *_pip_platform_args(python_version, machine),
        *requirements,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-6:])
            raise BackendError(
                f"while downloading the worker image's wheels with pip: pip exited with "
                f"{done.returncode}:\n{tail}\nCheck this machine's access to the package index "
                "(pip's own configuration is used), or build without wheels."
            )
        (staging / _COMPLETE).write_text("\n".join(requirements) + "\n")
        if folder.exists():  # another build finished the same download first
            shutil.rmtree(staging)
        else:
            staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def prepare_context(dest: Path, *, repo_root: Path = REPO_ROOT, wheels: Path | None) -> Path:
    """Fill ``dest`` with the Dockerfile's sources (``WORKER_FILES``, no caches) and the wheels."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")
    for name in WORKER_FILES:
        source = repo_root / name
        target = dest / name
        if not source.exists():
            raise BadInput(
                f"while preparing the worker image's build context: {source} is missing. Build "
                "from a full checkout of shepard-tf."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    if wheels is not None:
        (dest / WHEELS_FOLDER).mkdir()
        for wheel in sorted(wheels.glob("*.whl")):
            shutil.copy2(wheel, dest / WHEELS_FOLDER / wheel.name)
    return dest


def _has_image(client: Any, image: str) -> bool:
    import docker

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_worker_image(
    client: Any,
    *,
    base_image: str,
    tag: str,
    progress: Progress,
    wheels: bool | None = None,
    repo_root: Path = REPO_ROOT,
    cache: Path | None = None,
) -> str:
    """Build worker/Dockerfile from ``base_image`` as ``tag``; return the image id.

    ``client`` is a ``docker.DockerClient``; ``progress`` gets one line at a time (the steps
    and the build's own output). ``wheels``: True installs the requirements from wheels
    downloaded on this machine (no network in the build: the local flock, CI); False from the
    package index in the build; None (default) wheels when ``base_image`` is on this machine
    (then its Python version is known), the index otherwise. The base image is never pulled
    when it is here already. Raises BadInput when the Dockerfile fails, BackendError when the
    engine or pip does.
    """

    if wheels is None:
        wheels = _has_image(client, base_image)
    with tempfile.TemporaryDirectory(prefix="shepard-worker-context-") as tmp:
        wheel_dir: Path | None = None
        buildargs = {"BASE_IMAGE": base_image}
        if wheels:
            version, machine = image_python(client, base_image)
            wheel_dir = download_wheels(
                requirement_lines(repo_root),
                python_version=version,
                machine=machine,
                progress=progress,
                cache=cache,
            )
            buildargs["WHEELS_DIR"] = WHEELS_FOLDER
        context = prepare_context(Path(tmp), repo_root=repo_root, wheels=wheel_dir)
        progress(f"worker image: building {tag} from {base_image}")
        image_id = docker_build(
            client,
            path=context,
            dockerfile=DOCKERFILE,
            tag=tag,
            buildargs=buildargs,
            progress=progress,
            doing=f"building the worker image {tag}",
            fix=f"Fix {DOCKERFILE} or the base image {base_image}",
        )
    if not image_id:
        image_id = str(client.images.get(tag).id)
    return image_id


def docker_build(
    client: Any,
    *,
    path: Path,
    dockerfile: str,
    tag: str,
    buildargs: dict[str, str] | None,
    progress: Callable[[str], None],
    doing: str,
    fix: str,
) -> str:
    """``docker build`` of ``path`` as ``tag`` (never pulling: the base is local or given), its
    output streamed line by line to ``progress``; the new image's id ("" if the engine did not
    say). A failed step is a :class:`BadInput` naming ``fix`` with the build's last lines; an
    engine failure is a :class:`BackendError`."""
    import docker

    image_id = ""
    last: list[str] = []
    try:
        for chunk in client.api.build(
            path=str(path),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=buildargs or None,
            pull=False,
            rm=True,
            forcerm=True,
            decode=True,
        ):
            if "error" in chunk:
                tail = "\n".join(last[-8:])
                raise BadInput(
                    f"while {doing}: {str(chunk['error']).strip()}. {fix}; the build ended "
                    f"with:\n{tail}"
                )
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = str(aux["ID"])
            for line in _ANSI.sub("", str(chunk.get("stream") or "")).splitlines():
                if line.strip():
                    last.append(line.rstrip())
                    progress(line.rstrip())
    except docker.errors.APIError as error:
        raise BackendError(
            f"while {doing}: the Docker engine said {error}. Check that the engine runs and that "
            "the base image exists."
        ) from None
    return image_id
