"""Append-only JSONL result files that survive kill -9, power loss and a full disk.

Each record is encoded first and handed to the kernel in one `os.write` of the whole line
(an `O_APPEND` descriptor, no user-space buffer), so a killed process leaves whole lines; the
file is fsync'd at least every `sync_every` seconds, so a power cut loses at most that much.
Should a line still be torn (a power cut mid-write, a disk that filled up mid-line), the
writer that hit the error cuts it off again, and `read_journal` drops an unterminated last line
before a resumed run appends after it.
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

from edge_et.core.paths import shown
from edge_et.errors import EdgeEtError, InputError


class WriteFailed(EdgeEtError):
    """A result could not be written (disk full, quota, file size limit); what was written stays."""


class Journal:
    """An append-only JSONL file: `append(record)` writes one whole line."""

    def __init__(self, path: Path, *, sync_every: float = 1.0):
        self.path = Path(path)
        self.sync_every = sync_every
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise InputError(f"cannot write '{shown(self.path)}': {exc.strerror or exc}") from None
        self._synced_at = time.monotonic()
        self._unsynced = False

    def append(self, record: dict) -> None:
        """Write `record` as one line; WriteFailed (the file cut back to whole lines) when it cannot."""
        data = (json_line(record) + "\n").encode("utf-8")
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            _truncate_quietly(self._fd, start)
            raise WriteFailed(
                f"cannot write to '{shown(self.path)}': {_reason(exc)}; "
                "every line written before is kept"
            ) from None
        self._unsynced = True
        if time.monotonic() - self._synced_at >= self.sync_every:
            self.sync()

    def sync(self) -> None:
        """Flush what was appended to the disk."""
        if self._unsynced:
            os.fsync(self._fd)
            self._unsynced = False
        self._synced_at = time.monotonic()

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.sync()
        except OSError:
            pass  # the lines are with the kernel; a failed final fsync cannot un-write them
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def json_line(record: dict) -> str:
    """`record` as one line of JSON, UTF-8 text as such; a lone surrogate (which a user's JSON
    may hold as an escape, and UTF-8 cannot encode) keeps its escape instead."""
    text = json.dumps(record, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record)
    return text


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _truncate_quietly(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError:
        pass  # read_journal drops a torn last line anyway


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if exc.errno == errno.EFBIG:
        return "the file size limit was reached"
    return exc.strerror or str(exc)


def read_journal(path: Path, *, repair: bool = False) -> list[dict]:
    """The records of a journal written by `Journal`; [] when the file does not exist.

    An unterminated last line (the writer died mid-line) is skipped, and with `repair` cut off
    the file so appends start on a fresh line. A terminated line that is not a JSON object was
    not written by edge-et: InputError in one line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InputError(f"cannot read '{shown(path)}': {exc.strerror or exc}") from None
    whole = data[: data.rfind(b"\n") + 1]
    if repair and len(whole) != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(len(whole))
    return [
        _record(path, number, line)
        for number, line in enumerate(whole.splitlines(), start=1)
        if line.strip()
    ]


def _record(path: Path, number: int, line: bytes) -> dict:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        record = None
    if not isinstance(record, dict):
        raise InputError(
            f"'{shown(path)}' line {number} is not a result line written by edge-et; "
            f"move the file away or start without --resume"
        )
    return record
