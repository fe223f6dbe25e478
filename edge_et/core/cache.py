"""Where edge-et keeps what it can rebuild: speed profiles, converters, tiny test models.

One root for the runtime and the export toolchain, so one variable moves (or isolates) it all.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$EDGE_ET_CACHE`, else `~/.cache/edge-et`."""
    env = os.environ.get("EDGE_ET_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edge-et"
