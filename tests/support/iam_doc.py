"""The IAM check over a session's saved records, without running the tests again.

A session run with ``SHEPARD_IAM_RECORDS_OUT=FILE`` saves every recorded call and the applied
flock's state there; ``python tests/support/iam_doc.py FILE`` evaluates them as the session did
and prints the report (exit status 1 on a denial), ``--write`` also regenerates docs/iam.md
(``make iam-doc IAM_RECORDS=FILE``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import iam_check  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path, help="the file SHEPARD_IAM_RECORDS_OUT named")
    parser.add_argument("--write", action="store_true", help="regenerate docs/iam.md")
    args = parser.parse_args(argv)
    text = args.records.read_text()
    applied = iam_check.load_applied(text)
    if applied is None:
        print(
            f"{args.records} holds no applied flock: the session that saved it used no "
            "applied_flock. Run one that does (tests/integration).",
            file=sys.stderr,
        )
        return 2
    calls, names = iam_check.load_records(text)
    report = iam_check.session_report(
        calls, names, applied, write_doc=args.write, commands=iam_check.load_commands(text)
    )
    for line in report.lines():
        print(line)
    if args.write:
        print(f"wrote {iam_check.DOC.relative_to(ROOT)}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
