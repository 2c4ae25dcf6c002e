"""check_update: compare the installed version with PyPI's; upgrade only with --upgrade."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from typing import Any

from shepard import __version__
from shepard.commands import Context
from shepard.errors import ShepardError

PYPI_URL = "https://pypi.org/pypi/shepard-tf/json"
TIMEOUT_SECONDS = 3.0


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:4])


def latest_version(url: str, timeout: float) -> str | None:
    """The newest release on PyPI, or None when PyPI cannot be reached."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (https URL)
            data: Any = json.load(answer)
    except (OSError, ValueError):
        return None
    version = data.get("info", {}).get("version") if isinstance(data, dict) else None
    return str(version) if version else None


def check_update(ctx: Context) -> int:
    url = ctx.env.get("SHEPARD_PYPI_URL", PYPI_URL)
    latest = latest_version(url, TIMEOUT_SECONDS)
    newer = latest is not None and _key(latest) > _key(__version__)
    if ctx.flag("json"):
        ctx.console.json({"installed": __version__, "latest": latest, "update_available": newer})
    elif latest is None:
        ctx.console.print(
            f"shepard-tf {__version__} is installed; PyPI could not be reached ({url}),"
            " so whether a newer version exists is unknown"
        )
    elif newer:
        ctx.console.print(f"shepard-tf {latest} is available (installed: {__version__})")
    else:
        ctx.console.print(f"shepard-tf {__version__} is the newest version")
    if newer and ctx.flag("upgrade"):
        command = [sys.executable, "-m", "pip", "install", "--upgrade", f"shepard-tf=={latest}"]
        ctx.console.note("running: " + " ".join(command))
        if subprocess.run(command, check=False).returncode != 0:
            raise ShepardError(
                f"while upgrading shepard-tf to {latest}: pip failed (see above)."
                " Run the pip command by hand."
            )
    return 0
