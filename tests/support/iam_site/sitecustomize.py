"""Record the AWS calls of any Python process started with this folder on PYTHONPATH.

With ``SHEPARD_IAM_RECORD_DIR`` set, the recorder of tests/support/iam_record.py is installed
before the process's own code runs: every botocore call it makes is appended, one JSON line per
call, to ``<SHEPARD_IAM_RECORD_DIR>/<pid>.jsonl``, which the session's IAM check merges with its
own records. With ``SHEPARD_IAM_PART`` set (``payload``), every call is charged to that part;
without it, to the part whose code is on the calling stack (a worker or a CLI command run as a
process of its own).

The recorder is loaded from its file, not imported as ``tests.support.iam_record``: the process
(a payload) need not have the repository on its path. A recorder that cannot be installed says
so on stderr and leaves the process to run unrecorded; the test that relies on the records
fails on their absence.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

_MODULE = "shepard_iam_record"


def _install(folder: str) -> None:
    source = Path(__file__).resolve().parent.parent / "iam_record.py"
    spec = importlib.util.spec_from_file_location(_MODULE, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module at {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    # A process charged to a part of its own (a payload) runs none of shepard's code: hooking
    # shepard's settings and CLI would only import them into it.
    forced_part = bool(os.environ.get(module.PART_ENV))
    project = not forced_part and importlib.util.find_spec("shepard") is not None
    module.record_into(folder, project=project)


def _main() -> None:
    folder = os.environ.get("SHEPARD_IAM_RECORD_DIR")
    if not folder:
        return
    try:
        import botocore.session  # noqa: F401
    except ImportError:  # no AWS SDK in this interpreter: nothing to record
        return
    try:
        _install(folder)
    except Exception as error:  # never break the process that is being recorded
        sys.stderr.write(
            f"iam_site: while installing the AWS call recorder: {type(error).__name__}: "
            f"{error}; this process's calls are not recorded.\n"
        )


_main()
