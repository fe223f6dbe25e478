"""One stage's GGUF files for `bundle create`: pulled into the store, converted once, or found
where they are, and their headers checked for the stage they are to serve.

A catalog model is pulled as `edge-et pull` does, unless the store already holds every file its
receipt lists. A Hugging Face checkpoint is converted by the `Converter` the caller hands in
(this package never imports `export`), once per checkpoint content and quantization.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge_et.bundle.catalog import Catalog, ModelEntry
from edge_et.bundle.manifest import MANIFEST
from edge_et.bundle.pull import pull_report, read_receipt
from edge_et.bundle.sources import Source
from edge_et.core.paths import shown
from edge_et.errors import BundleError, InputError
from edge_et.formats.gguf import MMPROJ_ARCH, GGUFError, GGUFInfo, read_gguf_info

# Default quantization of a checkpoint no catalog entry describes (what `edge-et export` defaults to
# for a reasoner; the perception module is small and sensitive, as the catalog's Q8_0 says).
DEFAULT_QUANT = {"perception": "Q8_0", "reasoning": "Q4_K_M"}


class Converter(Protocol):
    """Turns a Hugging Face checkpoint into a one-stage GGUF bundle (the CLI wraps `export`)."""

    def check(self) -> None:
        """Raise MissingExtra when the toolchain is not installed (asked before any download)."""

    def __call__(self, checkpoint: Path, role: str, quant: str, out: Path) -> None:
        """Write a bundle with stage `role` at `out` (atomically), validated against transformers."""


@dataclass
class StageFiles:
    """A stage's files once fetched and converted, with what their headers say."""

    model: Path
    mmproj: Path | None
    info: GGUFInfo
    downloaded: bool = False
    converted: bool = False
    random_weights: bool = False


def _receipt_complete(folder: Path) -> bool:
    """The store folder holds every file its pull.json lists, at the recorded size: pulled before.

    Sizes only, not digests: `pull` verified them when it wrote the receipt, and hashing gigabytes
    again on every `bundle create` would make the second run as slow as the first."""
    files = read_receipt(folder).get("files")
    if not files:
        return False
    for name, meta in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != meta.get("size"):
            return False
    return True


def _pull(
    entry: ModelEntry,
    store: Path,
    catalog: Catalog,
    base_url: str | None,
    progress: bool,
    step: Callable[[str], None],
) -> bool:
    """Pull `entry` into the store unless it is there; True when something was downloaded."""
    if _receipt_complete(store / entry.name):
        return False
    step(f"pulling {entry.name} into {shown(store)}")
    report = pull_report(
        entry.name, store=store, base_url=base_url, progress=progress, catalog=catalog
    )
    return any(f.downloaded for f in report.files)


def _entry_files(entry: ModelEntry, folder: Path) -> tuple[Path, Path | None]:
    by_role = {spec.role: folder / spec.path for spec in entry.files}
    return by_role["model"], by_role.get("mmproj")


def _quant_for(source: Source, checkpoint: Path, catalog: Catalog, quant: str | None) -> str:
    """--quant, else the catalog's recommended_quant for this checkpoint's architecture."""
    if quant:
        return quant
    if source.entry is not None:
        return source.entry.recommended_quant
    try:
        model_type = json.loads((checkpoint / "config.json").read_text(encoding="utf-8")).get(
            "model_type"
        )
    except (OSError, ValueError, AttributeError):
        model_type = None  # the toolchain reports a malformed config in its own words
    for entry in catalog.entries:
        if (
            entry.format != "gguf"
            and entry.kind == source.role
            and entry.architecture == model_type
        ):
            return entry.recommended_quant
    return DEFAULT_QUANT[source.role]


def _checkpoint_key(checkpoint: Path) -> str:
    """A short key of a local checkpoint's files (names, sizes, mtimes): a changed one converts again."""
    import hashlib

    digest = hashlib.sha256(str(checkpoint.resolve()).encode())
    for path in sorted(checkpoint.iterdir()):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def _converted(
    source: Source,
    checkpoint: Path,
    store: Path,
    catalog: Catalog,
    quant: str | None,
    convert: Converter,
) -> tuple[Path, Path | None, bool, bool]:
    """The GGUFs of a converted checkpoint: converted once, then reused (model, mmproj, converted, random)."""
    chosen = _quant_for(source, checkpoint, catalog, quant)
    if source.entry is not None and source.kind in ("catalog", "store"):
        out = checkpoint / f"gguf-{chosen}"
    else:
        out = (
            store
            / "converted"
            / f"{checkpoint.resolve().name}-{_checkpoint_key(checkpoint)}-{chosen}"
        )
    converted = False
    if not (out / MANIFEST).is_file():
        convert(checkpoint, source.role, chosen, out)
        converted = True
    stage = json.loads((out / MANIFEST).read_text(encoding="utf-8")).get(source.role) or {}
    if not stage.get("model"):
        raise BundleError(
            f"the conversion of {shown(checkpoint)} wrote no {source.role} stage to {shown(out)}"
        )
    mmproj = out / stage["mmproj"] if stage.get("mmproj") else None
    return out / stage["model"], mmproj, converted, bool(stage.get("random_weights"))


def _header(path: Path, what: str) -> GGUFInfo:
    try:
        return read_gguf_info(path)
    except GGUFError as exc:
        raise InputError(f"{what} {shown(path)} is not a usable GGUF: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {shown(path)}: {exc.strerror or exc}") from None


def _check_kind(source: Source, model: Path, mmproj: Path | None) -> GGUFInfo:
    """Read the headers and refuse what cannot serve the stage, in one line each."""
    info = _header(model, f"the {source.role} model")
    if info.architecture == MMPROJ_ARCH:
        raise InputError(
            f"--{source.role} {source.ref}: {model.name} is a vision projector (mmproj), "
            "not a language model"
        )
    if source.role == "reasoning":
        return info
    if mmproj is None:
        raise InputError(
            f"--perception {source.ref}: {model.name} has no vision projector; a text GGUF "
            "cannot be the perception stage (a VLM: give its mmproj with --mmproj FILE)"
        )
    projector = _header(mmproj, "the mmproj")
    if projector.architecture != MMPROJ_ARCH or not projector.metadata.get(
        "clip.has_vision_encoder", False
    ):
        raise InputError(
            f"--mmproj {mmproj.name} is a '{projector.architecture}' model, not a vision "
            "projector with a vision encoder (clip)"
        )
    return info


def fetch_stage(
    source: Source,
    *,
    store: Path,
    catalog: Catalog,
    base_url: str | None,
    progress: bool,
    convert: Converter | None,
    quant: str | None,
    step: Callable[[str], None],
) -> StageFiles:
    """The stage's GGUF files on disk: pulled, converted or found where they are."""
    downloaded = converted = random = False
    if source.kind == "catalog":
        downloaded = _pull(source.entry, store, catalog, base_url, progress, step)
        source.path = store / source.entry.name
    if source.kind in ("catalog", "store") and source.entry.format == "gguf":
        model, mmproj = _entry_files(source.entry, source.path)
    elif source.needs_conversion:
        step(f"{source.role}: converting {shown(source.path)} to GGUF (once; parity-checked)")
        model, mmproj, converted, random = _converted(
            source, source.path, store, catalog, quant, convert
        )
    else:
        model, mmproj = source.path, source.mmproj
        random = bool(source.bundle_stage.get("random_weights"))
    if source.role == "perception" and mmproj is None and source.mmproj is not None:
        mmproj = source.mmproj
    info = _check_kind(source, model, mmproj)
    return StageFiles(
        model, mmproj if source.role == "perception" else None, info, downloaded, converted, random
    )
