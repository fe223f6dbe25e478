"""A GGUF bundle of the same tiny weights as an ONNX bundle built by export.tiny.onnx."""

import json
from pathlib import Path


def gguf_twin(tiny, out: Path, *, n_ctx: int = 2048) -> Path:
    """A GGUF bundle in `out` of the same weights (and thinking flag) as `tiny` (a TinyOnnx)."""
    from export.bundle import Stage, place, write_bundle

    manifest = json.loads((tiny.bundle / "bundle.json").read_text())
    stages = {}
    for role, files in tiny.ggufs.items():
        model = out / place(files.model, out, f"{role}.f16.gguf")
        mmproj = out / place(files.mmproj, out, "mmproj.f16.gguf") if files.mmproj else None
        stages[role] = Stage(
            model,
            mmproj=mmproj,
            n_ctx=n_ctx,
            thinking=manifest[role].get("thinking") if role == "reasoning" else None,
        )
    write_bundle(out, name="twin", **stages)
    return out
