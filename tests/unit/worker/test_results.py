"""Result and error zips: the seed's names, a TAG that cannot escape, links left out."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from shepard_worker.results import safe_tag, upload_error_zip, upload_results
from shepard_worker.workspace import Workspace

JOB = "0123456789abcdef0123456789abcdef"
START = "20261125T090000Z"


class Uploads:
    """Keeps what would go to S3 (multipart uploads, as the worker streams them): the zip's
    member names and contents, by bucket and key. tests/unit/worker/test_stream.py runs the
    same calls against the emulator."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, bytes]] = {}
        self.parts: dict[int, bytes] = {}

    def client(self, service: str) -> Uploads:
        assert service == "s3"
        return self

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: object) -> None:
        with zipfile.ZipFile(io.BytesIO(Body)) as zf:
            self.objects[(Bucket, Key)] = {n: zf.read(n) for n in zf.namelist()}

    def create_multipart_upload(self, **_: object) -> dict[str, str]:
        self.parts = {}
        return {"UploadId": "u1"}

    def upload_part(self, *, PartNumber: int, Body: bytes, **_: object) -> dict[str, str]:
        self.parts[PartNumber] = Body
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, *, Bucket: str, Key: str, **_: object) -> None:
        data = b"".join(self.parts[n] for n in sorted(self.parts))
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            self.objects[(Bucket, Key)] = {n: zf.read(n) for n in zf.namelist()}


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("test_file", "test_file"),
        ("a/b", "a_b"),
        ("../../x", "_.._x"),
        ("..", None),
        ("run 1; rm -rf /", "run_1_rm_-rf_"),
        ("", None),
        (None, None),
        ("x" * 300, "x" * 128),
    ],
)
def test_safe_tag(tag: str | None, expected: str | None) -> None:
    assert safe_tag(tag) == expected


def _workspace(tmp_path: Path) -> Workspace:
    ws = Workspace.plan(JOB, tmp_path / "root", None, tmp_path / "fsx")
    ws.create()
    return ws


def test_only_non_empty_output_folders_are_zipped_and_links_are_left_out(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    (ws.root.output / "sub").mkdir()
    (ws.root.output / "sub" / "a.txt").write_text("A")
    (ws.root.output / "empty").mkdir()
    secret = tmp_path / "host-secret"
    secret.write_text("do not ship")
    (ws.root.output / "link").symlink_to(secret)
    (ws.root.output / "dirlink").symlink_to(tmp_path)
    uploads = Uploads()
    lines: list[str] = []

    keys = upload_results(
        uploads, ws, bucket="out", job_id=JOB, start_time=START, tag="a/b", log=lines.append
    )

    assert keys == [f"a_b_result@{JOB}_{START}_root.zip"]  # the lustre output was empty
    assert uploads.objects[("out", keys[0])] == {"sub/a.txt": b"A", "empty/": b""}
    assert any("link" in line and "not" in line for line in lines)


def test_error_zip_holds_outputs_log_and_reason(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    (ws.root.output / "partial.txt").write_text("half")
    lustre = ws.get("lustre")
    assert lustre is not None
    (lustre.output / "l.txt").write_text("L")
    ws.log_path.write_text("shepard: something\n")
    uploads = Uploads()

    key = upload_error_zip(
        uploads, ws, bucket="err", job_id=JOB, start_time=START, reason="boom", log=print
    )

    assert key == f"error@{JOB}_{START}.zip"
    assert uploads.objects[("err", key)] == {
        "output_root/partial.txt": b"half",
        "output_lustre/l.txt": b"L",
        "worker.log": b"shepard: something\n",
        "reason.txt": b"boom\n",
    }
