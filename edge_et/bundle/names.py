"""Bundle names: the bundles home and what a `--bundle` value means (edge_et.bundle.home is the
public face; this module holds the part `Bundle.load` calls for every path it is given).

`$EDGE_ET_BUNDLES`, else `models/bundles` under the current folder. A value that names an existing
path is that path; otherwise a plain name is looked up in the home. A catalog pair that is not built
yet is an error whose one line gives the exact `edge-et bundle create` command: nothing is
downloaded behind the user's back. The manifest module imports this one, so this one does not
import it (MANIFEST below is its file name).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from edge_et.core.paths import path_problem, shown
from edge_et.errors import BundleError, EdgeEtError

MANIFEST = "bundle.json"  # edge_et.bundle.manifest.MANIFEST

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
        raise BundleError(
            f"bundle name '{shown(name)}' may use only letters, digits, '.', '_' and "
            "'-' (at most 128), and must start with a letter or digit"
        )
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
    raise BundleError(
        f"bundle '{text}' does not exist: no such folder, and no bundle of that name "
        f"in {shown(home)} (edge-et list shows the bundles there)"
    )
