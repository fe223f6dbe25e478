"""What is on this machine: the store's models, which bundles use them, and `edge-et rm`.

A store model is used by a bundle when one of the bundle's files is the same file (a hardlink:
`bundle create` links, never copies, where it can) or when the bundle's `origin` names it.
Removing goes through a rename first, so a bundle or model is at every moment whole or gone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edge_et.bundle.catalog import RECEIPT, Catalog, load_catalog
from edge_et.bundle.home import LocalBundle, bundles_home, folder_bytes, local_bundles
from edge_et.bundle.manifest import MANIFEST
from edge_et.core.paths import shown
from edge_et.errors import BundleError, EdgeEtError, InputError


@dataclass(frozen=True)
class StoreModel:
    """A model folder `edge-et pull` wrote: name, path, bytes on disk, quantization, kind, and the
    bundles of the home that use it."""

    name: str
    path: Path
    size_bytes: int
    quant: str
    kind: str
    used_by: tuple[str, ...] = field(default=())


def _inodes(folder: Path) -> set[tuple[int, int]]:
    found = set()
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                stat = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            found.add((stat.st_dev, stat.st_ino))
    return found


def _origin_stores(bundle: LocalBundle) -> set[str]:
    try:
        origin = (
            json.loads((bundle.path / MANIFEST).read_text(encoding="utf-8")).get("origin") or {}
        )
        return {stage.get("store") for stage in origin.values() if isinstance(stage, dict)} - {None}
    except (OSError, ValueError, AttributeError):
        return set()


def users(model_folder: Path, bundles: list[LocalBundle]) -> tuple[str, ...]:
    """Names of the bundles that use the store model in `model_folder`."""
    inodes = _inodes(model_folder)
    return tuple(
        b.name
        for b in bundles
        if model_folder.name in _origin_stores(b) or inodes & _inodes(b.path)
    )


def store_models(
    store: Path, *, home: Path | None = None, catalog: Catalog | Path | None = None
) -> list[StoreModel]:
    """Every model folder of the store (those with a pull.json), by name."""
    store = Path(store)
    if not store.is_dir():
        return []
    try:
        catalog = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    except EdgeEtError:
        catalog = None  # still list what is on disk
    bundles = local_bundles(home)
    found = []
    for folder in sorted(p for p in store.iterdir() if (p / RECEIPT).is_file()):
        entry = None
        if catalog is not None and folder.name in catalog.names():
            entry = catalog.find(folder.name)
        found.append(
            StoreModel(
                folder.name,
                folder,
                folder_bytes(folder),
                entry.quant if entry else "?",
                entry.kind if entry else "?",
                users(folder, bundles),
            )
        )
    return found


def _remove_folder(folder: Path) -> None:
    """Rename aside, then delete: no reader ever sees half a folder."""
    aside = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f"{folder.name}.old-"))
    os.rmdir(aside)
    os.replace(folder, aside)
    shutil.rmtree(aside, ignore_errors=True)


def remove(name: str, *, home: Path | None = None, store: Path) -> dict:
    """`edge-et rm NAME`: the bundle NAME of the home, else the store model NAME if no bundle uses it.

    Returns {"removed": "bundle" | "model", "name", "path", "bytes"}.
    Raises:
        InputError: no bundle or store model has that name, or a bundle still uses the model.
        BundleError: the folder cannot be removed (permissions, read-only file system).
    """
    home = Path(home) if home is not None else bundles_home()
    bundle = next((b for b in local_bundles(home) if b.name == name), None)
    if bundle is not None:
        target, kind = bundle.path, "bundle"
    else:
        target, kind = Path(store) / name, "model"
        if not (target / RECEIPT).is_file():
            raise InputError(
                f"'{shown(name)}' is neither a bundle in {shown(home)} nor a model in the store "
                f"{shown(store)} (edge-et list shows both)"
            )
        in_use = users(target, local_bundles(home))
        if in_use:
            raise InputError(
                f"the store model '{name}' is used by bundle(s) {', '.join(in_use)}; remove "
                f"those first (edge-et rm {in_use[0]})"
            )
    size = folder_bytes(target)
    try:
        _remove_folder(target)
    except OSError as exc:
        raise BundleError(f"cannot remove {shown(target)}: {exc.strerror or exc}") from None
    return {"removed": kind, "name": name, "path": str(target), "bytes": size}
