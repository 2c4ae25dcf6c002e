"""The Hello World payload: it fails unless test1..test4 are set as in the seed's example.

Then it copies its inputs (ROOT_INPUT_NAME, including the flock's secrets in secrets/) to its
outputs (ROOT_OUTPUT_NAME) and writes a small report, so a job's output zip shows what the
container saw.
"""

import json
import os
import shutil
import sys
from pathlib import Path

EXPECTED = {"test1": "test1", "test2": "test2", "test3": "test3", "test4": "0"}


def main() -> int:
    wrong = {name: os.environ.get(name) for name, value in EXPECTED.items()}
    wrong = {name: got for name, got in wrong.items() if got != EXPECTED[name]}
    if wrong:
        print(
            "testing_code: expected test1=test1, test2=test2, test3=test3, test4=0; "
            f"got {json.dumps(wrong)}",
            file=sys.stderr,
        )
        return 1
    inputs = Path(os.environ["ROOT_INPUT_NAME"])
    outputs = Path(os.environ["ROOT_OUTPUT_NAME"])
    outputs.mkdir(parents=True, exist_ok=True)
    if inputs.is_dir():
        shutil.copytree(inputs, outputs / "inputs", dirs_exist_ok=True)
    report = {
        "uuid": os.environ.get("UUID"),
        "tag": os.environ.get("TAG"),
        "is_invoked": os.environ.get("IS_INVOKED"),
        "variables": {name: os.environ[name] for name in EXPECTED},
    }
    (outputs / "hello_world.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"testing_code: all four variables set; wrote {outputs / 'hello_world.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
