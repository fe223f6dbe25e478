"""Qwen2.5-VL: Qwen2-VL with a SwiGLU, RMSNorm, windowed-attention ViT.

The text model converts to the same GGUF architecture as Qwen2-VL ("qwen2vl"); the mmproj is
the converter's "qwen2.5vl" projector, which needs `fullatt_block_indexes` evenly spaced.
Tiny: text 128 wide, vision 64 wide and 4 deep (full attention in blocks 1 and 3).
"""

from __future__ import annotations

from pathlib import Path

from export.archs import prepared_copy
from export.archs.base import ArchSpec, Blueprint, TinyBuilder
from export.archs.qwen2vl import (
    CHAT_TEMPLATE,
    VISION_SPECIALS,
    image_processor,
    mrope_section,
    qwen_vl_text,
    set_top_level_architectures,
    vision_token_ids,
)
from export.archs.qwen3 import qwen_tokenizer
from export.tokenizer import PRE_TOKENIZER

_EDIT = set_top_level_architectures("Qwen2_5_VLForConditionalGeneration")


def blueprint(
    *,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 256,
    vision_dim: int = 64,
    vision_depth: int = 4,
    vision_heads: int = 4,
    vision_intermediate: int = 128,
    window_pattern: int = 2,
) -> Blueprint:
    """A Qwen2_5_VLForConditionalGeneration; every `window_pattern`-th vision block attends
    to the full image, the others within windows."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = qwen_tokenizer(CHAT_TEMPLATE, special=VISION_SPECIALS)
    text = qwen_vl_text(
        tokenizer,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        intermediate=intermediate,
        rope_scaling={"type": "mrope", "mrope_section": mrope_section(hidden // heads)},
    )
    vision = dict(
        depth=vision_depth,
        hidden_size=vision_dim,
        out_hidden_size=hidden,
        intermediate_size=vision_intermediate,
        num_heads=vision_heads,
        hidden_act="silu",
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        in_channels=3,
        fullatt_block_indexes=list(range(window_pattern - 1, vision_depth, window_pattern)),
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        tie_word_embeddings=True,
        dtype="float32",
        **vision_token_ids(tokenizer),
    )
    return Blueprint(
        Qwen2_5_VLForConditionalGeneration,
        config,
        tokenizer,
        image_processor=image_processor(14),
        config_edit=_EDIT,
    )


def prepare(hf_dir: Path, work_dir: Path) -> Path:
    """Add the top-level `architectures` the converter needs, on a linked copy."""
    return prepared_copy(hf_dir, work_dir, _EDIT)


SPEC = ArchSpec(
    name="qwen25vl",
    role="perception",
    model_types=("qwen2_5_vl",),
    build_tiny=TinyBuilder(blueprint),
    gguf_arch="qwen2vl",
    prepare=prepare,
    pre_tokenizer=PRE_TOKENIZER,
    notes="Qwen2.5-VL; text converts as qwen2vl, mmproj by the converter",
)
