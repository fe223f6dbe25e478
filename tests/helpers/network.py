"""Is the package index reachable? Tests marked `network` (real wheels from PyPI) skip when not."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from urllib.parse import urlsplit

DEFAULT_INDEX = "https://pypi.org/simple"


@lru_cache(maxsize=1)
def offline_reason(timeout_s: float = 3.0) -> str | None:
    """Why the index cannot be reached (one line), or None when a TCP connection to it opens.

    A short connect, not a download: an offline machine answers within `timeout_s` instead of
    waiting out pip's retries. The index is pip's (PIP_INDEX_URL), else PyPI.
    """
    url = os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX
    parts = urlsplit(url)
    if parts.scheme == "file":
        return None if os.path.isdir(parts.path) else f"the package index {url} does not exist"
    host, port = (
        parts.hostname or "pypi.org",
        parts.port or (443 if parts.scheme == "https" else 80),
    )
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"the package index {host}:{port} is unreachable ({exc.strerror or exc}): network test skipped"
