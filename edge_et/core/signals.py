"""Clean shutdown on Ctrl-C (SIGINT) and SIGTERM, shared by batch, eval, bench and export.

Two ways to stop, chosen by the work being done:

- `graceful()` around a loop of independent lines (batch, eval): the first signal only sets a
  flag; the loop finishes the line in flight, flushes, says what is done and how to resume, and
  exits 130 (SIGINT) or 143 (SIGTERM). A second signal exits at once: the result files are
  consistent at every moment (whole lines, see edge_et.core.journal), so nothing is corrupted.
- `interrupting()` (installed for every command by the CLI): the signal raises `Interrupted`
  where the work is, so `finally` blocks and atomic writers (edge_et.core.atomic) delete their
  temporary files and a half-built bundle is never left behind. SIGTERM's default action would
  end the process without running any of them.

This lives in core, not runtime, because the export toolchain uses it and may not import the
runtime.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised by `interrupting()` handlers; `exit_code` is 128 + the signal number.

    A BaseException like KeyboardInterrupt, so `except Exception` does not swallow it, but not
    a KeyboardInterrupt: typer turns those into exit code 130 whatever the signal was.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class StopFlag:
    """Set by the first SIGINT/SIGTERM inside `graceful()`; loops poll `requested`."""

    def __init__(self, notice: Callable[[str], None]):
        self.signum: int | None = None
        self._notice = notice

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum or signal.SIGINT).name

    def _handle(self, signum: int, _frame) -> None:
        if self.signum is None:
            self.signum = signum
            self._notice(
                f"{signal.Signals(signum).name}: finishing the line in flight, then "
                f"stopping (press Ctrl-C again to stop at once)"
            )
            return
        os._exit(128 + signum)  # every file is whole at every moment: nothing to tidy


def _notice_on_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def graceful(notice: Callable[[str], None] = _notice_on_stderr) -> Iterator[StopFlag]:
    """Within the block, SIGINT/SIGTERM set the yielded flag instead of stopping the process."""
    flag = StopFlag(notice)
    with _handlers(flag._handle):
        yield flag


@contextlib.contextmanager
def interrupting() -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM raise `Interrupted` (cleanup runs, exit code 128 + signal)."""

    def handle(signum: int, _frame) -> None:
        raise Interrupted(signum)

    with _handlers(handle):
        yield


@contextlib.contextmanager
def _handlers(handler) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers; the caller's own stay in force
        return
    previous = {signum: signal.signal(signum, handler) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
