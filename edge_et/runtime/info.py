"""What a bundle holds, as a plain dict (for `edge-et info`), read from headers only."""

from __future__ import annotations

from edge_et import backends
from edge_et.bundle.manifest import Bundle, StageSpec

RANDOM_NOTE = (
    "random weights: this model was never trained, its output is noise "
    "(it exercises the real architecture and runtime only)"
)


def describe_bundle(bundle: Bundle) -> dict:
    """Name, description and, per stage, its files, architecture, quantization, sizes and context.

    Then what each backend of the bundle says about this machine (ONNX: its execution providers).
    """
    described = {
        "name": bundle.name,
        "path": str(bundle.path),
        "description": bundle.description,
        "stages": {stage.role: _describe_stage(stage) for stage in bundle.stages()},
        "prompt_overrides": sorted(bundle.prompts),
        "decoding_overrides": bundle.decoding,
    }
    for name in dict.fromkeys(stage.backend for stage in bundle.stages()):
        described.update(backends.get(name).host_info())
    return described


def _describe_stage(stage: StageSpec) -> dict:
    files = backends.get(stage.backend).describe(stage)
    data = {
        "backend": stage.backend,
        "model": files["model"],
        "thinking": stage.thinking,
        "random_weights": stage.random_weights,
        "source": stage.source,
        "n_ctx": stage.n_ctx,
    }
    if stage.random_weights:
        data["note"] = RANDOM_NOTE
    if "mmproj" in files:
        data["mmproj"] = files["mmproj"]
    return data
