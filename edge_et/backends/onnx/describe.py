"""`edge-et info` for ONNX stages: sizes from the files, the rest from onnx_config.json."""

from __future__ import annotations

from pathlib import Path

from edge_et.backends.onnx.footprint import file_bytes
from edge_et.backends.spec import Stage


def describe_onnx_files(stage: Stage) -> dict:
    """{"model": ..., "mmproj": ...} as the llama.cpp backend describes GGUF files."""
    config = stage.onnx_config or {}
    folder = Path(stage.model_path).parent
    weights = file_bytes(Path(stage.model_path))
    if config.get("embed"):
        weights += file_bytes(folder / config["embed"])  # the token embeddings, split off for VLMs
    model = {
        "file": stage.model,
        "architecture": config.get("arch", stage.arch),
        "quantization": config.get("quant", ""),
        "size_bytes": weights,
        "context_length": config.get("max_positions"),
        "vocab_size": config.get("vocab_size"),
        "layers": config.get("n_layer"),
        "hidden_size": config.get("hidden_size"),
        "chat_template": bool(config.get("chat_template")),
    }
    files = {"model": model}
    if stage.mmproj_path is not None:
        vision = config.get("vision") or {}
        files["mmproj"] = {
            "file": stage.mmproj,
            "architecture": "vision",
            "quantization": config.get("quant", ""),
            "size_bytes": file_bytes(Path(stage.mmproj_path)),
            "projector": vision.get("kind"),
            "image_size": vision.get("tile"),
        }
        if vision.get("layout"):  # Idefics3: transformers' or libmtmd's tiling
            files["mmproj"]["image_layout"] = vision["layout"]
    return files
