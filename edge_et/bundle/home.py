"""The bundles home: where `edge-et bundle create NAME` puts bundles and `--bundle NAME` finds them.

`$EDGE_ET_BUNDLES`, else `models/bundles` under the current folder (beside the model store
`models/store`; `make demo` writes `models/bundles/default` there, so `--bundle default` works).
A `--bundle` value that names an existing folder is that folder; otherwise a plain name is looked
up in the home. A catalog pair that is not built yet is an error whose one line gives the exact
`edge-et bundle create` command: nothing is downloaded behind the user's back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edge_et.bundle.manifest import MANIFEST, Bundle
from edge_et.bundle.names import (  # noqa: F401 - the public API lives here
    DEFAULT_HOME,
    ENV,
    bundles_home,
    check_name,
    is_bundle_name,
    resolve_bundle,
)
from edge_et.errors import EdgeEtError


@dataclass(frozen=True)
class LocalBundle:
    """A folder of the bundles home: its name, path, bytes on disk and, when it does not load,
    the one-line reason (`problem`)."""

    name: str
    path: Path
    size_bytes: int
    problem: str | None = None

    def load(self) -> Bundle:
        """The validated bundle (BundleError when `problem` is set)."""
        return Bundle.load(self.path)


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under `folder` (a hardlinked file counts in each folder)."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass  # removed while we looked
    return total


def local_bundles(home: Path | None = None) -> list[LocalBundle]:
    """Every bundle in the home (default `bundles_home()`), by name; broken ones carry `problem`."""
    home = Path(home) if home is not None else bundles_home()
    if not home.is_dir():
        return []
    found = []
    for folder in sorted(home.iterdir()):
        if (
            not folder.is_dir()
            or not is_bundle_name(folder.name)
            or not (folder / MANIFEST).exists()
        ):
            continue
        try:
            Bundle.load(folder)
            problem = None
        except EdgeEtError as exc:
            problem = str(exc)
        found.append(LocalBundle(folder.name, folder, folder_bytes(folder), problem))
    return found
