"""Names that would leave the job's folders are refused, with the reason; unzipping is safe."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest
from shepard_worker.fetch import rebuild_secrets
from shepard_worker.workspace import (
    Workspace,
    check_file_name,
    safe_destination,
    safe_unzip,
)

from shepard.errors import BadInput


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("../x", 'leaves its folder with ".."'),
        ("a/../../x", 'leaves its folder with ".."'),
        ("/etc/passwd", "absolute path"),
        ("", "empty"),
        ("a\\b", "empty or has"),
        (".", "names no file"),
    ],
)
def test_names_leaving_the_folder_are_refused(tmp_path: Path, name: str, cause: str) -> None:
    with pytest.raises(BadInput, match=cause):
        safe_destination(tmp_path, name, what="the object")


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "link").symlink_to(tmp_path)
    assert safe_destination(folder, "sub/file.txt", what="x") == folder / "sub" / "file.txt"
    with pytest.raises(BadInput, match=r"outside .* \(through a symbolic link\)"):
        safe_destination(folder, "link/file.txt", what="the object")


def test_secret_file_names_must_be_plain() -> None:
    assert check_file_name("cert.pem", what="x") == "cert.pem"
    with pytest.raises(BadInput, match="not a plain file name"):
        check_file_name("dir/cert.pem", what="x")


def _zip(tmp_path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    path = tmp_path / "in.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def test_unzip_extracts_into_the_folder(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("inputs.json", b"{}"), ("data/a.txt", b"A"), ("empty/", b"")])
    target = tmp_path / "input"
    target.mkdir()
    safe_unzip(archive, target, what="the zip")
    assert (target / "data" / "a.txt").read_bytes() == b"A"
    assert (target / "empty").is_dir()


def test_unzip_refuses_escaping_entries_and_links(tmp_path: Path) -> None:
    target = tmp_path / "input"
    target.mkdir()
    with pytest.raises(BadInput, match="leaves its folder"):
        safe_unzip(_zip(tmp_path, [("../evil.txt", b"x")]), target, what="the zip")
    assert not (tmp_path / "evil.txt").exists()
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(BadInput, match='"link" is a symbolic link'):
        safe_unzip(_zip(tmp_path, [(link, b"/etc/passwd")]), target, what="the zip")


def test_unzip_refuses_an_entry_that_would_overwrite_the_zip(tmp_path: Path) -> None:
    archive = _zip(tmp_path, [("in.zip", b"not a zip")])
    with pytest.raises(BadInput, match=r'"in\.zip" has the name of the zip itself'):
        safe_unzip(archive, tmp_path, what="the zip")
    assert zipfile.is_zipfile(archive)


def test_unzip_refuses_a_zip_larger_than_the_free_disk(tmp_path: Path) -> None:
    # A zip bomb declares more bytes than any disk holds: refused before a byte is written.
    archive = _zip(tmp_path, [("small.txt", b"x"), ("huge.bin", b"")])
    with zipfile.ZipFile(archive, "a") as zf:
        zf.getinfo("huge.bin").file_size = 2**50
        zf._didModify = True  # type: ignore[attr-defined]  # rewrite the central directory
    target = tmp_path / "input"
    target.mkdir()
    with pytest.raises(BadInput, match=r"holds \d+ bytes, more than the \d+ bytes free"):
        safe_unzip(archive, target, what="the zip")
    assert list(target.iterdir()) == []


def test_workspace_layout_and_clean(tmp_path: Path) -> None:
    ws = Workspace.plan("j1", tmp_path / "root", tmp_path / "efs", None)
    ws.create()
    assert [f.location for f in ws.folders] == ["root", "efs"]
    assert ws.root.input == tmp_path / "root" / "j1" / "input"
    assert (tmp_path / "efs" / "j1" / "output").is_dir()
    assert ws.read_only == {"efs": tmp_path / "efs"}
    assert stat.S_IMODE(ws.scratch.stat().st_mode) == 0o700
    (ws.root.output / "x").write_text("x")
    ws.clean()
    assert list((tmp_path / "root").iterdir()) == [] and list((tmp_path / "efs").iterdir()) == []


class _Secrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def download(self, bucket: str, key: str, path: Path, size: int | None = None) -> None:
        raise AssertionError("not used")

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        raise AssertionError("not used")

    def secret_text(self, name: str) -> str | None:
        return self.values.get(name)


def test_secrets_with_a_path_in_the_name_are_refused(tmp_path: Path) -> None:
    store = _Secrets({"s": '{"../../.bashrc": "ZWNobyBoaQ=="}'})
    with pytest.raises(BadInput, match=r'file name in the secret "s" "../../.bashrc"'):
        rebuild_secrets(store, "s", tmp_path / "secrets")
    assert not (tmp_path / ".bashrc").exists()


def test_no_secret_gives_an_empty_folder_and_bad_base64_is_named(tmp_path: Path) -> None:
    assert rebuild_secrets(_Secrets({}), "s", tmp_path / "secrets") == []
    assert list((tmp_path / "secrets").iterdir()) == []
    with pytest.raises(BadInput, match=r'"a\.txt" is not valid base64'):
        rebuild_secrets(_Secrets({"s": '{"a.txt": "!!"}'}), "s", tmp_path / "other")
    with pytest.raises(BadInput, match='its part "s-2" does not exist'):
        rebuild_secrets(_Secrets({"s": '{"__shepard_parts__": ["s-2"]}'}), "s", tmp_path / "third")
