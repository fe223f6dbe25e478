"""Qwen2-VL: ViT with 2x2 patch merging, M-RoPE language model; the default demo perception model.

Tiny: text 128 wide, vision 64 wide and 3 deep (the converter's mmproj needs depth >= 3).
transformers 4.57 writes `architectures` only into `text_config`, but the converter picks the
mmproj class from the top-level key: real hub checkpoints have it, tiny ones get it at build
time and `prepare` adds it to copies of checkpoints saved by 4.57.
"""

from __future__ import annotations

from pathlib import Path

from export.archs import prepared_copy
from export.archs.base import ArchSpec, Blueprint, TinyBuilder
from export.archs.qwen3 import qwen_tokenizer
from export.tokenizer import PRE_TOKENIZER, chatml_template, padded_vocab

VISION_SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
# ChatML; an image part renders as the placeholder Qwen's processors expand.
CHAT_TEMPLATE = chatml_template(image="<|vision_start|><|image_pad|><|vision_end|>")


def vision_token_ids(tokenizer) -> dict[str, int]:
    """The config's image/video/vision-boundary token ids, from the tokenizer."""
    ids = tokenizer.convert_tokens_to_ids
    return dict(
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )


def mrope_section(head_dim: int) -> list[int]:
    """Split the rotary half-dimension into temporal/height/width sections (16:24:24 in
    Qwen2-VL's 128-dim heads, scaled to `head_dim`)."""
    half = head_dim // 2
    side = half * 3 // 8
    return [half - 2 * side, side, side]


def qwen_vl_text(
    tokenizer, *, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int, **extra
) -> dict:
    """text_config keyword arguments shared by the Qwen VL builders."""
    return dict(
        vocab_size=padded_vocab(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def image_processor(patch_size: int, merge: int = 2):
    """Qwen's image processor at small pixel bounds (the tiny tests feed small images)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

    unit = patch_size * merge
    return Qwen2VLImageProcessor(
        patch_size=patch_size, merge_size=merge, min_pixels=unit * unit, max_pixels=(16 * unit) ** 2
    )


def set_top_level_architectures(name: str):
    """A config edit that copies the model class into the top-level `architectures`."""

    def edit(config: dict) -> bool:
        if config.get("architectures") == [name]:
            return False
        config["architectures"] = [name]
        return True

    return edit


def blueprint(
    *,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 256,
    vision_dim: int = 64,
    vision_depth: int = 3,
    vision_heads: int = 4,
) -> Blueprint:
    """A Qwen2VLForConditionalGeneration: text model plus vision tower."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

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
        embed_dim=vision_dim,
        hidden_size=hidden,
        num_heads=vision_heads,
        mlp_ratio=2,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        in_channels=3,
    )
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        tie_word_embeddings=True,
        dtype="float32",
        **vision_token_ids(tokenizer),
    )
    return Blueprint(
        Qwen2VLForConditionalGeneration,
        config,
        tokenizer,
        image_processor=image_processor(14),
        config_edit=_EDIT,
    )


_EDIT = set_top_level_architectures("Qwen2VLForConditionalGeneration")


def prepare(hf_dir: Path, work_dir: Path) -> Path:
    """Add the top-level `architectures` the converter needs, on a linked copy."""
    return prepared_copy(hf_dir, work_dir, _EDIT)


SPEC = ArchSpec(
    name="qwen2vl",
    role="perception",
    model_types=("qwen2_vl",),
    build_tiny=TinyBuilder(blueprint),
    gguf_arch="qwen2vl",
    prepare=prepare,
    pre_tokenizer=PRE_TOKENIZER,
    notes="Qwen2-VL; mmproj by the converter (vision depth >= 3)",
)
