"""Gemma 3 VLM: SigLIP vision tower, average-pooled to a fixed number of soft tokens per image,
Gemma 3 language model with `<start_of_turn>` turns.

The converter reads `image_seq_length` (tokens per image) from the processor config and
derives the pooling factor from it; libmtmd wraps each image in <start_of_image> ...
<end_of_image>. Tiny: text 64 wide, vision 64 wide with 64-pixel images of 8-pixel patches
pooled 2x2 to 16 tokens.
"""

from __future__ import annotations

from export.archs.base import ArchSpec, Blueprint, TinyBuilder
from export.archs.gemma3_text import chat_template, gemma_tokenizer, text_config
from export.tokenizer import PRE_TOKENIZER

IMAGE_SPECIALS = ["<start_of_image>", "<end_of_image>", "<image_soft_token>"]


def blueprint(
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 1,
    head_dim: int = 32,
    intermediate: int = 128,
    vision_dim: int = 64,
    vision_layers: int = 2,
    vision_heads: int = 2,
    vision_intermediate: int = 128,
    image_size: int = 64,
    patch_size: int = 8,
    tokens_per_image: int = 16,
) -> Blueprint:
    """A Gemma3ForConditionalGeneration; `tokens_per_image` must be a square that divides
    the patch grid (SigLIP output is average-pooled down to it)."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration
    from transformers.models.gemma3.image_processing_gemma3 import Gemma3ImageProcessor

    tokenizer = gemma_tokenizer(chat_template(), special=IMAGE_SPECIALS)
    ids = tokenizer.convert_tokens_to_ids
    text = text_config(
        tokenizer,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate=intermediate,
        sliding_window=512,
        max_positions=32_768,
    )
    vision = dict(
        hidden_size=vision_dim,
        intermediate_size=vision_intermediate,
        num_hidden_layers=vision_layers,
        num_attention_heads=vision_heads,
        image_size=image_size,
        patch_size=patch_size,
        layer_norm_eps=1e-6,
        vision_use_head=False,
    )
    config = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=tokens_per_image,
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
        dtype="float32",
    )
    processor = Gemma3ImageProcessor(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return Blueprint(
        Gemma3ForConditionalGeneration,
        config,
        tokenizer,
        image_processor=processor,
        processor_config={
            "image_seq_length": tokens_per_image,
            "processor_class": "Gemma3Processor",
        },
    )


SPEC = ArchSpec(
    name="gemma3",
    role="perception",
    model_types=("gemma3",),
    build_tiny=TinyBuilder(blueprint),
    gguf_arch="gemma3",
    pre_tokenizer=PRE_TOKENIZER,
    notes="Gemma 3 VLM (SigLIP); mmproj by the converter",
)
