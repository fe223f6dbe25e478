"""Files and folders that appear whole or not at all.

A reader (or a run after a crash) sees either the old content or the new, never half of it:
everything is written under a temporary name in the destination's own folder (a rename is
atomic only within one file system), flushed to disk, then renamed over the destination.
A killed writer leaves at most a temporary `.NAME.tmp-XXXX` file or a `NAME.partial-XXXX`
folder, never a file or bundle that looks finished.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; on a clean exit it replaces `path`.

    On an exception the temporary file is deleted and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_folder(path.parent)


def write_text(path: Path, text: str) -> Path:
    """Replace `path` with `text` (UTF-8) atomically."""
    with atomic_file(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: Path, data: bytes) -> Path:
    """Replace `path` with `data` atomically."""
    with atomic_file(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def replace_file(source: Path, path: Path) -> None:
    """Move a finished file (e.g. a verified download) over `path`, durably."""
    with open(source, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(source, path)
    fsync_folder(Path(path).parent)


@contextlib.contextmanager
def partial_directory(path: Path) -> Iterator[Path]:
    """Yield an empty scratch folder `PATH.partial-XXXX` beside `path`; it is deleted afterwards.

    Build there, then `publish_directory` the finished folder (the scratch itself or a folder
    inside it) to `path`. After a kill -9 the scratch stays under its `.partial-` name, which no
    reader mistakes for the finished folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{path.name}.partial-"))
    partial.chmod(0o755)  # mkdtemp makes it private
    try:
        yield partial
    finally:
        shutil.rmtree(partial, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a `PATH.partial-XXXX` folder to build in; on a clean exit it becomes `path`.

    An existing `path` is replaced (the caller decides whether that is allowed); on an
    exception `path` is untouched and the partial folder deleted.
    """
    with partial_directory(path) as partial:
        yield partial
        publish_directory(partial, path)


def publish_directory(built: Path, path: Path) -> None:
    """Rename the finished folder `built` to `path` (same file system); an old `path` is moved
    aside first and deleted after, so `path` is at every moment the old folder or the new."""
    path = Path(path)
    old = None
    if path.exists() or path.is_symlink():
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{path.name}.old-"))
        os.rmdir(old)
        os.replace(path, old)
    os.replace(built, path)
    fsync_folder(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
