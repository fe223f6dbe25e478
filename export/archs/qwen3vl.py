"""Qwen3-VL (dense): SigLIP-2-style ViT with learned, interpolated positions and "deepstack"
features injected into early language-model layers; interleaved M-RoPE Qwen3 text model.

Tiny: text 128 wide and 3 deep, vision 64 wide and 3 deep, deepstack from vision blocks 0
and 1 into text layers 0 and 1 (never the last one: llama.cpp aborts),
8x8 learned positions (the converter derives image_size = 8 * patch 16 = 128 from them).
The Instruct variant: non-thinking ChatML (Qwen3-VL-Thinking would set `thinking`).
"""

from __future__ import annotations

from export.archs.base import ArchSpec, Blueprint, TinyBuilder
from export.archs.qwen2vl import CHAT_TEMPLATE, VISION_SPECIALS, image_processor, vision_token_ids
from export.archs.qwen3 import THINK_TOKENS, qwen_tokenizer
from export.tokenizer import PRE_TOKENIZER, padded_vocab


def _mrope_section(head_dim: int) -> list[int]:
    # Qwen3-VL splits the 64 rotary pairs of its 128-dim heads 24:20:20 (t, h, w).
    half = head_dim // 2
    side = half * 20 // 64
    return [half - 2 * side, side, side]


def blueprint(
    *,
    hidden: int = 128,
    layers: int = 3,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 256,
    vision_dim: int = 64,
    vision_depth: int = 3,
    vision_heads: int = 4,
    vision_intermediate: int = 128,
    positions_side: int = 8,
    deepstack: tuple[int, ...] = (0, 1),
) -> Blueprint:
    """A Qwen3VLForConditionalGeneration (dense text model)."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    if len(deepstack) >= layers:
        # llama.cpp adds deepstack features after the last layer has dropped all but the
        # output rows, and aborts (GGML_ASSERT ggml_can_repeat) if that layer takes one.
        raise ValueError(f"{len(deepstack)} deepstack features need more than {layers} text layers")

    tokenizer = qwen_tokenizer(CHAT_TEMPLATE, special=VISION_SPECIALS, plain=THINK_TOKENS)
    head_dim = hidden // heads
    text = dict(
        vocab_size=padded_vocab(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        rope_theta=5_000_000.0,
        tie_word_embeddings=True,
        rope_scaling={
            "rope_type": "default",
            "mrope_section": _mrope_section(head_dim),
            "mrope_interleaved": True,
        },
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        depth=vision_depth,
        hidden_size=vision_dim,
        intermediate_size=vision_intermediate,
        num_heads=vision_heads,
        out_hidden_size=hidden,
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        in_channels=3,
        num_position_embeddings=positions_side**2,
        deepstack_visual_indexes=list(deepstack),
    )
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        tie_word_embeddings=True,
        dtype="float32",
        **vision_token_ids(tokenizer),
    )
    return Blueprint(
        Qwen3VLForConditionalGeneration, config, tokenizer, image_processor=image_processor(16)
    )


SPEC = ArchSpec(
    name="qwen3vl",
    role="perception",
    model_types=("qwen3_vl",),
    build_tiny=TinyBuilder(blueprint),
    gguf_arch="qwen3vl",
    pre_tokenizer=PRE_TOKENIZER,
    notes="Qwen3-VL dense (Instruct); mmproj by the converter, deepstack layers included",
)
