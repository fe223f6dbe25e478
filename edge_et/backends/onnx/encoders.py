"""The vision encoder an ONNX stage's onnx_config.json asks for, by its `kind`."""

from __future__ import annotations

from pathlib import Path

from edge_et.backends.image_cache import EmbeddingCache
from edge_et.backends.onnx.idefics3 import Idefics3Encoder
from edge_et.backends.onnx.qwen2vl import Qwen2VLEncoder
from edge_et.backends.onnx.vision import CACHE_BYTES, LlavaOvEncoder, VisionEncoder
from edge_et.errors import BundleError

KINDS = ("llava_onevision", "qwen2_vl", "qwen2_5_vl", "idefics3")


def open_encoder(config: dict, folder: Path, session) -> VisionEncoder:
    """The encoder of the vision section's `kind`; one line naming the known kinds."""
    kind = config.get("kind")
    if kind not in KINDS:
        raise BundleError(
            f"onnx_config.json: vision kind {kind!r} is not supported; known: {', '.join(KINDS)}"
        )
    if kind in ("qwen2_vl", "qwen2_5_vl"):
        return Qwen2VLEncoder(config, folder, session, EmbeddingCache(CACHE_BYTES))
    if kind == "idefics3":
        return Idefics3Encoder(config, session)
    return LlavaOvEncoder(config, folder, session)
