"""What a bundle holds, as a plain dict (for `edge-et info`), read from headers only."""

from __future__ import annotations

from edge_et.bundle.manifest import Bundle, StageSpec
from edge_et.formats.gguf import GGUFInfo

RANDOM_NOTE = ("random weights: this model was never trained, its output is noise "
               "(it exercises the real architecture and runtime only)")


def describe_bundle(bundle: Bundle) -> dict:
    """Name, description and, per stage, its files, architecture, quantization, sizes and context.

    With an ONNX stage, also the ONNX Runtime execution providers this machine has.
    """
    described = {
        "name": bundle.name,
        "path": str(bundle.path),
        "description": bundle.description,
        "stages": {stage.role: _describe_stage(stage) for stage in bundle.stages()},
        "prompt_overrides": sorted(bundle.prompts),
        "decoding_overrides": bundle.decoding,
    }
    if any(stage.backend == "onnx" for stage in bundle.stages()):
        described["onnx_providers"] = _onnx_providers()
    return described


def _onnx_providers() -> list[str] | str:
    try:
        from edge_et.backends.onnx.session import available_providers
    except ImportError:
        return "onnxruntime is not installed: pip install 'edge-et[onnx]'"
    return available_providers()


def _describe_stage(stage: StageSpec) -> dict:
    if stage.backend == "onnx":
        from edge_et.backends.onnx.describe import describe_onnx_files

        files = describe_onnx_files(stage)
    else:
        files = {"model": _describe_file(stage.model, stage.model_info)}
        if stage.mmproj:
            files["mmproj"] = _describe_file(stage.mmproj, stage.mmproj_info)
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
    if info.architecture == "clip":
        described["projector"] = info.metadata.get("clip.projector_type") or \
            info.metadata.get("clip.vision.projector_type")
        described["image_size"] = info.metadata.get("clip.vision.image_size")
    else:
        described.update(context_length=info.context_length, vocab_size=info.vocab_size,
                         layers=info.arch_value("block_count"),
                         hidden_size=info.arch_value("embedding_length"),
                         chat_template=info.chat_template is not None)
    return described
