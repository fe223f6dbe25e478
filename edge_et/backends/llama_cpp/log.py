"""Route llama.cpp's and libmtmd's log lines away from the terminal.

llama.cpp prints hundreds of lines per load; users should see one line when a load
fails, naming llama.cpp's own reason. The callback keeps the recent lines in memory
(`last_error` picks the reason) and prints them only when EDGE_ET_VERBOSE is set.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections import deque

import llama_cpp
import llama_cpp.mtmd_cpp as mtmd_cpp

_recent: deque[tuple[int, str]] = deque(maxlen=200)
_ERROR, _WARN = 4, 3  # ggml_log_level: DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5


@llama_cpp.llama_log_callback
def _capture(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    line = text.decode("utf-8", errors="replace")
    _recent.append((level, line))
    if os.environ.get("EDGE_ET_VERBOSE"):
        print(line, end="", file=sys.stderr, flush=True)


def install() -> None:
    """Make `_capture` the log sink of llama.cpp and libmtmd (idempotent)."""
    llama_cpp.llama_log_set(_capture, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_log_set(_capture, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(_capture, ctypes.c_void_p(0))


def clear() -> None:
    """Forget earlier lines, so that `last_error` speaks of what follows."""
    _recent.clear()


def last_error() -> str:
    """The last error (or else warning) line llama.cpp logged since `clear`, or ''."""
    for wanted in (_ERROR, _WARN):
        for level, line in reversed(_recent):
            if level == wanted and line.strip():
                return " ".join(line.split())
    return ""
