"""Validation of a llama.cpp stage of a bundle: its GGUF headers, read before anything loads.

The model must be a language model (not an mmproj) of the architecture the manifest names; a
perception stage also needs a `clip` mmproj with a vision encoder.
"""

from __future__ import annotations

from pathlib import Path

from edge_et.backends.spec import Resolve, Stage
from edge_et.errors import BundleError
from edge_et.formats.gguf import MMPROJ_ARCH, GGUFError, GGUFInfo, read_gguf_info

MANIFEST = "bundle.json"


def _gguf(path: Path, what: str) -> GGUFInfo:
    try:
        return read_gguf_info(path)
    except GGUFError as exc:
        raise BundleError(f"{what} '{path.name}' is broken: {exc}") from None
    except OSError as exc:
        raise BundleError(f"cannot read {what} '{path.name}': {exc.strerror or exc}") from None


def validate_gguf_stage(stage: Stage, resolve: Resolve) -> None:
    """Check a llama.cpp Stage and fill its paths and GGUF headers."""
    label = f"{stage.role} model"
    stage.model_path = resolve(stage.model, label)
    stage.model_info = _gguf(stage.model_path, label)
    arch = stage.model_info.architecture
    if arch == MMPROJ_ARCH:
        raise BundleError(
            f"{label} '{stage.model}' is an mmproj (vision projector), not a language model"
        )
    if stage.arch and stage.arch != arch:
        raise BundleError(
            f"{label} '{stage.model}' is architecture '{arch}', but {MANIFEST} says '{stage.arch}'"
        )
    stage.arch = arch
    if stage.role == "perception":
        _validate_mmproj(stage, resolve)
    elif stage.mmproj:
        raise BundleError(
            f"{MANIFEST}: the reasoning model is text-only; remove 'reasoning.mmproj'"
        )


def _validate_mmproj(stage: Stage, resolve: Resolve) -> None:
    if not stage.mmproj:
        raise BundleError(
            f"{MANIFEST}: the perception stage needs an 'mmproj' (vision projector) file"
        )
    stage.mmproj_path = resolve(stage.mmproj, "perception mmproj")
    stage.mmproj_info = _gguf(stage.mmproj_path, "perception mmproj")
    if stage.mmproj_info.architecture != MMPROJ_ARCH:
        raise BundleError(
            f"perception mmproj '{stage.mmproj}' is a '{stage.mmproj_info.architecture}' "
            "model, not a vision projector (clip)"
        )
    if not stage.mmproj_info.metadata.get("clip.has_vision_encoder", False):
        raise BundleError(f"perception mmproj '{stage.mmproj}' has no vision encoder")
