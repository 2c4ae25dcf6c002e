"""The flock being deployed: loaded once from its file, with its state folder.

The state folder (``<folder of flock.yaml>/.shepard/<name>/`` or ``$SHEPARD_STATE_DIR/<name>/``)
remembers the flock file it belongs to, so a folder copied together with its ``.shepard/`` is
recognised before Terraform trips over the other flock's backend.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shepard.config import load_flock as load_config
from shepard.config.model import FlockConfig
from shepard.errors import BadInput
from shepard.tf.workdir import Backend, backend_from_config, write_if_changed

STATE_DIR_VARIABLE = "SHEPARD_STATE_DIR"
OWNER_FILE = "flock-file.json"
WORKING_COPY = "terraform"


@dataclass(frozen=True)
class Flock:
    """What deploying needs to know about one flock file, read once."""

    name: str
    region: str
    target: str
    flock_file: Path
    state_dir: Path
    backend: Backend = field(default_factory=Backend)
    config: FlockConfig | None = None


def state_dir_for(flock_file: Path, name: str, env: Mapping[str, str]) -> Path:
    """``$SHEPARD_STATE_DIR/<name>/`` or ``<folder of flock.yaml>/.shepard/<name>/``."""
    base = env.get(STATE_DIR_VARIABLE)
    root = Path(base) if base else Path(flock_file).resolve().parent / ".shepard"
    return (root / name).resolve()


def load_flock(flock_file: Path, env: Mapping[str, str]) -> Flock:
    """Read and validate ``flock_file`` (:mod:`shepard.config`) into a :class:`Flock`."""
    flock_file = Path(flock_file)
    if not flock_file.is_file():
        raise BadInput(
            f"while reading the flock file: {flock_file} does not exist. "
            "Give the path of a flock.yaml"
        )
    config = load_config(flock_file)
    return Flock(
        name=config.name,
        region=config.region,
        target=config.target,
        flock_file=flock_file.resolve(),
        state_dir=state_dir_for(flock_file, config.name, env),
        backend=backend_from_config(config.state),
        config=config,
    )


def _recorded_owner(state_dir: Path) -> Path | None:
    try:
        recorded = json.loads((state_dir / OWNER_FILE).read_text()).get("flock_file")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(recorded) if isinstance(recorded, str) and recorded else None


def _cached_local_backend(state_dir: Path) -> Path | None:
    """Where the working copy's initialised local backend keeps the state (Terraform's own
    record of ``init``), for state folders older than the owner file."""
    cached = state_dir / WORKING_COPY / "flock" / ".terraform" / "terraform.tfstate"
    try:
        backend: Any = json.loads(cached.read_text()).get("backend") or {}
    except (OSError, ValueError, AttributeError):
        return None
    path = (backend.get("config") or {}).get("path") if backend.get("type") == "local" else None
    return Path(path) if isinstance(path, str) and path else None


def claim_state_dir(flock: Flock) -> str | None:
    """Make sure the state folder belongs to this flock file, and record that it does.

    A state folder copied together with its flock folder belongs to the original: its local
    Terraform backend points there, and its state describes the original's resources. That is
    refused with what to do. A folder that was moved (the original flock file is gone) is
    adopted: its Terraform working copy is rebuilt around the state, which moved with it.
    Returns a note for the user when something was adopted.
    """
    state_dir = flock.state_dir
    owner = _recorded_owner(state_dir)
    cached = _cached_local_backend(state_dir)
    elsewhere = cached if cached is not None and cached.parent.resolve() != state_dir else None
    foreign = (owner is not None and owner != flock.flock_file) or elsewhere is not None
    note: str | None = None
    if foreign:
        original = owner if owner is not None and owner != flock.flock_file else None
        copied = (original is not None and original.is_file()) or (
            elsewhere is not None and elsewhere.is_file()
        )
        if copied and flock.backend.kind == "local":
            belongs = f"the flock file {original}" if original else f"the state {elsewhere}"
            raise BadInput(
                f"while preparing flock {flock.name}: its state folder {state_dir} belongs to "
                f"{belongs} (the folder was copied together with its .shepard/). Its Terraform "
                "state describes that flock's resources, so this one cannot use it. For a "
                f"separate flock, delete {state_dir} and give the copy another `name` in "
                f"{flock.flock_file.name}; to manage the original flock, run shepard-tf on "
                "the original flock file"
            )
        # Moved (the original is gone), or the state is remote and shared: the state is this
        # flock's. Rebuild the working copy, whose initialised backend points at the old place.
        shutil.rmtree(state_dir / WORKING_COPY, ignore_errors=True)
        note = f"The state folder {state_dir} moved here; it now belongs to {flock.flock_file}."
    write_if_changed(
        state_dir / OWNER_FILE,
        json.dumps({"flock_file": str(flock.flock_file)}, indent=2) + "\n",
    )
    return note
