"""retrieve: download the results not already present, in parallel, with progress."""

from __future__ import annotations

import hashlib
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from shepard.aws.flock import S3Object
from shepard.commands import Context
from shepard.commands.jobs import TRANSFER_WORKERS, transfer_workers
from shepard.errors import BadInput

DOWNLOAD_WORKERS = TRANSFER_WORKERS  # at once; --parallel N


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def already_present(obj: S3Object, path: Path) -> bool:
    """Same size, and same MD5 where the ETag is one (single-part uploads)."""
    try:
        if path.stat().st_size != obj.size:
            return False
    except FileNotFoundError:
        return False
    if "-" in obj.etag:  # a multipart ETag is not an MD5 of the content: size decides
        return True
    return _md5(path) == obj.etag


def local_path(root: Path, key: str) -> Path | None:
    """Where ``key`` lands under ``root``; None for a key that would escape it."""
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or any(p in ("..", ".") for p in parts):
        return None
    return root.joinpath(*parts)


def _unzip(zip_path: Path) -> None:
    target = zip_path.with_suffix("")
    with zipfile.ZipFile(zip_path) as zf:
        for member in zf.infolist():
            if local_path(target, member.filename) is None:
                raise BadInput(
                    f"while unzipping {zip_path}: member {member.filename!r} points outside the"
                    " folder. The zip was not extracted; inspect it by hand."
                )
        zf.extractall(target)


def result_prefix(tag: str | None) -> str:
    """Where the results of jobs with this TAG start: the TAG as the worker puts it in a name
    (shepard/joblayer/tags.py), then ``_result@``. A TAG no job could have is refused."""
    if not tag:
        return ""
    from shepard.joblayer.tags import check_tag, tag_in_name

    refused = check_tag(tag)
    if refused is not None:
        raise BadInput(
            f"while retrieving results tagged {tag[:40]!r}: no job can have that TAG ({refused})."
            " Pass the TAG the jobs were given."
        )
    return f"{tag_in_name(tag)}_result@"


def retrieve(ctx: Context) -> int:
    bucket = ctx.settings.require("s3_bucket_for_results", "retrieving results")
    root = ctx.path_flag("directory_to_sync_s3_bucket_to", "retrieving results")
    tag: str | None = ctx.flag("tag")
    root.mkdir(parents=True, exist_ok=True)
    aws = ctx.aws
    wanted: list[tuple[S3Object, Path]] = []
    skipped = 0
    for obj in aws.list_objects(bucket, prefix=result_prefix(tag)):
        path = local_path(root, obj.key)
        if path is None:
            ctx.console.note(f"skipping {obj.key!r}: its name would leave {root}")
            continue
        if already_present(obj, path):
            skipped += 1
        else:
            wanted.append((obj, path))
    total = sum(obj.size for obj, _ in wanted)
    with ctx.console.progress(f"downloading {len(wanted)} result(s)", total) as bar:

        def download(item: tuple[S3Object, Path]) -> None:
            obj, path = item
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.part")
            aws.download_file(bucket, obj.key, partial, bar.advance, size=obj.size)
            os.replace(partial, path)

        if wanted:
            with ThreadPoolExecutor(max_workers=transfer_workers(ctx, len(wanted))) as pool:
                list(pool.map(download, wanted))
    for _obj, path in wanted:
        if ctx.flag("unzip") and path.suffix == ".zip":
            _unzip(path)
        ctx.console.print(str(path))
    ctx.console.note(
        f"downloaded {len(wanted)} result(s) ({total} bytes) to {root}; {skipped} already present"
    )
    return 0
