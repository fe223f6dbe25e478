"""How pictures reach the workers (`--ray-images`).

- bytes (default): a read step pinned to the driver's node opens each picture there, and the
  bytes travel to whichever node runs the perception actor through Ray's object store. Any
  cluster works; pictures are read as the lines stream through, not all at once.
- paths: each worker opens the path itself, so nothing is copied; every node must mount the
  pictures at the same path (NFS, a shared disk). A picture this machine reads but a worker
  cannot stops the run with one line (every later line would fail alike), the lines before
  it kept for `--resume`.

Either way a picture that is bad for everyone (missing, corrupt) is that line's error record,
with the message the single-process run gives.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from edge_et.core.images import LoadedImage, load_image, load_image_bytes
from edge_et.core.paths import path_problem, shown
from edge_et.distributed.rows import batch_of, payload_of, row, rows_of
from edge_et.errors import EdgeEtError, InputError


def readable_here(path: Path | None) -> bool:
    """Whether this machine can open `path` (paths mode: a worker that cannot is a setup error)."""
    return path is not None and not path_problem(path) and os.access(path, os.R_OK)


def picture_bytes(path: Path) -> tuple[bytes, str | None]:
    """The file's bytes, or b"" and the one-line error `load_image` gives for it."""
    try:
        info = None if path_problem(path) else os.stat(path)
        if info is not None and stat.S_ISREG(info.st_mode) and info.st_size > 0:
            return path.read_bytes(), None
    except OSError:
        pass
    try:
        load_image(path)  # not a readable, non-empty regular file: its own message
    except EdgeEtError as exc:
        return b"", str(exc)
    return b"", f"cannot read image '{shown(path)}'"


def read_on_driver_node(batch: dict) -> dict:
    """Ray Data step (a task pinned to the driver's node): each line's picture as bytes."""
    entries = []
    for entry in rows_of(batch):
        payload = payload_of(entry)
        image = payload.get(
            "image"
        )  # None: the line needs no picture (an error, a saved extraction)
        data = b""
        if image:
            data, payload["read_error"] = picture_bytes(Path(image))
        entries.append(row(int(entry["index"]), payload, data))
    return batch_of(entries)


def worker_picture(
    entry: dict, payload: dict, path: Path, prepare=lambda picture: picture
) -> LoadedImage:
    """The line's picture on a worker, decoded (and `prepare`d) from the bytes it was sent or
    from `path`. InputError for a bad picture; WorkerCannotRead when only this worker fails."""
    if payload.get("read_error"):
        raise InputError(payload["read_error"])
    data = bytes(entry["picture"])
    if data:
        return prepare(load_image_bytes(data, name=os.fsdecode(path)))
    if payload.get("driver_reads") and not readable_here(path):
        raise WorkerCannotRead(
            f"the Ray worker on {socket.gethostname()} cannot read "
            f"'{shown(path)}', which this machine reads: with --ray-images "
            f"paths every node must mount the pictures at the same path; "
            f"use --ray-images bytes to send them"
        )
    return prepare(load_image(path))


class WorkerCannotRead(Exception):  # noqa: N818 - a signal to the worker, not an error kind
    """Paths mode: a worker cannot open a picture the driver can. Not the line's fault, so not
    an EdgeEtError: the worker reports it in the row and the driver stops the run with it."""
