"""Pack exported GGUF files into an edge-et bundle: a directory plus `bundle.json`.

The manifest names files relative to the bundle and records the sha256 of every model file,
so the runtime can validate a bundle before it allocates any model.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The manifest contract is the runtime's: export writes what `edge_et.bundle.manifest` reads.
from edge_et.bundle.manifest import BUNDLE_FORMAT, MANIFEST, sha256_file
from edge_et.core import atomic


@dataclass(frozen=True)
class Stage:
    """One model of a bundle, as export hands it over.

    Attributes:
        model: the text GGUF; placed into the bundle under its own file name.
        mmproj: the vision projector GGUF (perception only).
        n_ctx: context length the runtime should allocate.
        random_weights: True when the weights are random (tests, demos).
        source: one line saying where the weights came from.
        thinking: whether the model emits `<think>` reasoning (reasoning stage only).
        arch: the GGUF's `general.architecture`; read from the file when None.
        backend: the runtime backend that loads it.
    """

    model: Path
    mmproj: Path | None = None
    n_ctx: int = 4096
    random_weights: bool = False
    source: str = ""
    thinking: bool | None = None
    arch: str | None = None
    backend: str = "llama.cpp"


def place(src: Path, out_dir: Path, name: str | None = None) -> str:
    """Put `src` into `out_dir` as `name` (default: its own name) by hardlink, else copy.

    Nothing happens when it is already there; returns the file name inside `out_dir`.
    """
    dst = out_dir / (name or src.name)
    if dst.exists() and dst.samefile(src):
        return dst.name
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)  # model files are large and immutable: share the inode when we can
    except OSError:
        shutil.copyfile(src, dst)
    return dst.name


def _stage_entry(stage: Stage, out_dir: Path, *, reasoning: bool) -> dict[str, Any]:
    from export.gguf.files import architecture

    model = place(stage.model, out_dir)
    entry: dict[str, Any] = {"backend": stage.backend, "model": model}
    files = [model]
    if stage.mmproj is not None:
        entry["mmproj"] = place(stage.mmproj, out_dir)
        files.append(entry["mmproj"])
    entry["arch"] = stage.arch or architecture(out_dir / model)
    if reasoning:
        entry["thinking"] = bool(stage.thinking)
    entry.update(
        n_ctx=stage.n_ctx,
        random_weights=stage.random_weights,
        source=stage.source,
        sha256={name: sha256_file(out_dir / name) for name in files},
    )
    return entry


def write_bundle(
    out_dir: Path,
    *,
    name: str,
    description: str = "",
    perception: Stage | None = None,
    reasoning: Stage | None = None,
    prompts: dict[str, Any] | None = None,
    decoding: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle into `out_dir` and return the path of its `bundle.json`.

    Model files outside `out_dir` are hardlinked or copied in. Either stage may be absent
    (a one-sided bundle), not both. The manifest is written last and atomically, so a
    bundle with a manifest is always complete.
    """
    if perception is None and reasoning is None:
        raise ValueError("a bundle needs a perception stage, a reasoning stage, or both")
    if perception is not None and perception.mmproj is None:
        raise ValueError("the perception stage needs an mmproj file")
    stages = [stage for stage in (perception, reasoning) if stage is not None]
    names = [Path(f).name for stage in stages for f in (stage.model, stage.mmproj) if f]
    if len(set(names)) != len(names):  # they share one folder: same names would overwrite
        raise ValueError(f"bundle files need distinct names, got {names}")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "name": name,
        "description": " ".join(description.split()),
    }
    if perception is not None:
        manifest["perception"] = _stage_entry(perception, out_dir, reasoning=False)
    if reasoning is not None:
        manifest["reasoning"] = _stage_entry(reasoning, out_dir, reasoning=True)
    manifest["prompts"] = dict(prompts or {})
    manifest["decoding"] = dict(decoding or {})
    path = out_dir / MANIFEST
    return atomic.write_text(path, json.dumps(manifest, indent=2) + "\n")


def verify_bundle(out_dir: Path) -> bool:
    """True when `out_dir` holds a bundle the runtime accepts, every sha256 matching."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.errors import EdgeEtError

    if not (out_dir / MANIFEST).is_file():
        return False
    try:
        Bundle.load(out_dir, verify_checksums=True)
    except EdgeEtError:
        return False
    return True
