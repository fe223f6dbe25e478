"""`edge-et info` for llama.cpp stages: what the GGUF headers say about each file."""

from __future__ import annotations

from edge_et.backends.spec import Stage
from edge_et.formats.gguf import MMPROJ_ARCH, GGUFInfo


def describe_gguf_files(stage: Stage) -> dict:
    """{"model": ..., "mmproj": ...}: architecture, quantization, sizes and context per file."""
    files = {"model": _describe_file(stage.model, stage.model_info)}
    if stage.mmproj:
        files["mmproj"] = _describe_file(stage.mmproj, stage.mmproj_info)
    return files


def _describe_file(name: str, info: GGUFInfo | None) -> dict:
    if info is None:
        return {"file": name}
    described = {
        "file": name,
        "architecture": info.architecture,
        "name": info.name,
        "quantization": info.file_type,
        "size_bytes": info.size_bytes,
        "tensors": info.n_tensors,
    }
    if info.architecture == MMPROJ_ARCH:
        described["projector"] = info.metadata.get("clip.projector_type") or info.metadata.get(
            "clip.vision.projector_type"
        )
        described["image_size"] = info.metadata.get("clip.vision.image_size")
    else:
        described.update(
            context_length=info.context_length,
            vocab_size=info.vocab_size,
            layers=info.arch_value("block_count"),
            hidden_size=info.arch_value("embedding_length"),
            chat_template=info.chat_template is not None,
        )
    return described
