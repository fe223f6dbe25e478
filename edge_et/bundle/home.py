"""The bundles home: where `edge-et bundle create NAME` puts bundles and `--bundle NAME` finds them.

`$EDGE_ET_BUNDLES`, else `models/bundles` under the current folder (beside the model store
`models/store`; `make demo` writes `models/bundles/default` there, so `--bundle default` works).
A `--bundle` value that names an existing folder is that folder; otherwise a plain name is looked
up in the home. A catalog pair that is not built yet is an error whose one line gives the exact
`edge-et bundle create` command: nothing is downloaded behind the user's back.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from edge_et.bundle.manifest import MANIFEST, Bundle
from edge_et.core.paths import path_problem, shown
from edge_et.errors import BundleError, EdgeEtError

ENV = "EDGE_ET_BUNDLES"
DEFAULT_HOME = Path("models") / "bundles"
# A bundle name is one folder name: what `bundle create` accepts and `--bundle NAME` looks up.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Left beside a bundle by atomic writes (edge_et.core.atomic): never a bundle of its own.
_SCRATCH = re.compile(r".*\.(partial|old)-[^/]*")


def bundles_home() -> Path:
    """`$EDGE_ET_BUNDLES`, else `models/bundles` (relative to the current folder)."""
    return Path(os.environ.get(ENV) or DEFAULT_HOME)


def is_bundle_name(ref: str) -> bool:
    """True when `ref` can be a bundle's name (a folder name, no path separators)."""
    return bool(NAME.fullmatch(ref)) and not _SCRATCH.fullmatch(ref) and ref not in (".", "..")


def check_name(name: str) -> str:
    """`name` if it can name a bundle in the home; a one-line BundleError otherwise."""
    if not is_bundle_name(name):
        raise BundleError(f"bundle name '{shown(name)}' may use only letters, digits, '.', '_' and "
                          "'-' (at most 128), and must start with a letter or digit")
    return name


def _pair_hint(name: str) -> str | None:
    """The command that builds catalog pair `name`, with what it downloads; None for no pair."""
    from edge_et.bundle.catalog import load_catalog
    from edge_et.bundle.pairs import download_text, find_pair

    try:
        catalog = load_catalog()
        pair = find_pair(name, catalog)
    except EdgeEtError:
        return None  # a broken catalog must not hide the plain "not found" answer
    if pair is None:
        return None
    return f"edge-et bundle create {name} (downloads {download_text(pair, catalog)})"


def resolve_bundle(ref: str | os.PathLike) -> Path:
    """The bundle folder `ref` means: an existing path as it is, else the bundle NAME in the home.

    Raises:
        BundleError: `ref` is neither; when it names a catalog pair not built yet, the message
            gives the exact `edge-et bundle create` command.
    """
    if path_problem(ref):
        return Path(ref)  # Bundle.load says what is wrong with it, in its words
    path = Path(ref)
    if path.exists():
        return path
    text = os.fspath(ref)
    if not is_bundle_name(text):
        raise BundleError(f"bundle '{shown(text)}' does not exist")
    home = bundles_home()
    if (home / text).exists():
        return home / text
    hint = _pair_hint(text)
    if hint:
        raise BundleError(f"bundle '{text}' is not built yet; build it with: {hint}")
    raise BundleError(f"bundle '{text}' does not exist: no such folder, and no bundle of that name "
                      f"in {shown(home)} (edge-et list shows the bundles there)")


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
        if not folder.is_dir() or not is_bundle_name(folder.name) or not (folder / MANIFEST).exists():
            continue
        try:
            Bundle.load(folder)
            problem = None
        except EdgeEtError as exc:
            problem = str(exc)
        found.append(LocalBundle(folder.name, folder, folder_bytes(folder), problem))
    return found
