"""Idefics3 / SmolVLM: SigLIP tiles, pixel-shuffle connector, Llama (SmolLM2) language model.

Converter needs (docs/pitfalls.md): `text_config.architectures = ["VLlama3ForCausalLM"]`, as real
checkpoints have (transformers 4.57 does not write it; `prepare` adds it on a copy), and a
vocabulary with a "\\n\\n" token. libmtmd lays an image out its own way: an image that fits one
tile becomes a 1x1 grid plus an overview, `<fake_token_around_image><row_1_col_1>` tokens
"\\n\\n" `<fake_token_around_image><global-img>` tokens `<fake_token_around_image>`.

Tiny: text 256 wide (K-quant friendly), vision 64 wide, 32-pixel tiles of 8-pixel patches,
pixel shuffle 2 (4 tokens per tile). Shape: SmolVLM-256M-Instruct.
"""

from __future__ import annotations

from pathlib import Path

from export.archs import prepared_copy
from export.archs.base import ArchSpec, Blueprint, TinyBuilder
from export.archs.llama import smollm2_tokenizer
from export.tokenizer import PRE_TOKENIZER, padded_vocab

# Tiles are addressed by <row_R_col_C> tokens; SmolVLM's vocabulary has them up to 6 x 6.
IMAGE_SPECIALS = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>"] + [
    f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)
]

# SmolVLM-Instruct's layout: "<|im_start|>User: ...<end_of_utterance>\nAssistant:". A turn
# that opens with an image part gets "User:" without the space, as in the real template.
CHAT_TEMPLATE = (
    "{{- '<|im_start|>' -}}"
    "{%- for message in messages -%}"
    "{{- message['role'] | capitalize -}}"
    "{%- if message['content'] is not string and message['content'][0]['type'] == 'image' -%}"
    "{{- ':' -}}{%- else -%}{{- ': ' -}}{%- endif -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- else -%}{{- '<image>' -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<end_of_utterance>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)

_TEXT_ARCH = "VLlama3ForCausalLM"


def _set_text_architecture(config: dict) -> bool:
    text = config.setdefault("text_config", {})
    if text.get("architectures") == [_TEXT_ARCH]:
        return False
    text["architectures"] = [_TEXT_ARCH]
    return True


def blueprint(
    *,
    hidden: int = 256,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 512,
    vocab: int | None = None,
    tie: bool = False,
    vision_dim: int = 64,
    vision_layers: int = 2,
    vision_heads: int = 2,
    vision_intermediate: int = 128,
    image_size: int = 32,
    patch_size: int = 8,
    scale_factor: int = 2,
    max_tiles_side: int = 1,
    dtype: str = "float32",
) -> Blueprint:
    """An Idefics3ForConditionalGeneration. Images are split into tiles of `image_size` up
    to `max_tiles_side` per side (SmolVLM: 512-pixel tiles, longest edge 4 x 512)."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration
    from transformers.models.idefics3.image_processing_idefics3 import Idefics3ImageProcessor

    tokenizer = smollm2_tokenizer(
        CHAT_TEMPLATE, special=IMAGE_SPECIALS, size=vocab, eos="<end_of_utterance>"
    )
    if len(tokenizer.encode("\n\n", add_special_tokens=False)) != 1:
        raise RuntimeError("the tokenizer lacks a '\\n\\n' token, which the converter needs")
    text = dict(
        model_type="llama",
        vocab_size=vocab or padded_vocab(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=8192,
        rope_theta=100_000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=vision_dim,
        intermediate_size=vision_intermediate,
        num_hidden_layers=vision_layers,
        num_attention_heads=vision_heads,
        image_size=image_size,
        patch_size=patch_size,
        layer_norm_eps=1e-6,
    )
    config = Idefics3Config(
        text_config=text,
        vision_config=vision,
        scale_factor=scale_factor,
        tie_word_embeddings=tie,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        dtype=dtype,
    )
    processor = Idefics3ImageProcessor(
        size={"longest_edge": image_size * max_tiles_side},
        max_image_size={"longest_edge": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return Blueprint(
        Idefics3ForConditionalGeneration,
        config,
        tokenizer,
        image_processor=processor,
        config_edit=_set_text_architecture,
    )


def prepare(hf_dir: Path, work_dir: Path) -> Path:
    """Set `text_config.architectures` to VLlama3ForCausalLM, on a linked copy."""
    return prepared_copy(hf_dir, work_dir, _set_text_architecture)


SPEC = ArchSpec(
    name="idefics3",
    role="perception",
    model_types=("idefics3", "smolvlm"),
    build_tiny=TinyBuilder(blueprint),
    gguf_arch="llama",
    shapes={
        "smolvlm-256m": dict(
            hidden=576,
            layers=30,
            heads=9,
            kv_heads=3,
            intermediate=1536,
            vocab=49_280,
            tie=False,
            vision_dim=768,
            vision_layers=12,
            vision_heads=12,
            vision_intermediate=3072,
            image_size=512,
            patch_size=16,
            scale_factor=4,
            max_tiles_side=4,
            dtype="bfloat16",
        ),
    },
    prepare=prepare,
    pre_tokenizer=PRE_TOKENIZER,
    notes="SmolVLM / Idefics3; libmtmd tiles images its own way",
)


def sequential_positions(model) -> None:
    """Number every unpadded tile's patches 0..N-1, as llama.cpp does (transformers 4.57
    buckets fp32 fractions and can repeat a position). The micro model is trained with this
    rule; export.parity.gguf_vision applies the same one to whole tiles only."""
    import torch

    embeddings = model.model.vision_model.embeddings

    def forward(pixel_values, patch_attention_mask=None):
        patches = embeddings.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        positions = torch.arange(patches.shape[1], device=patches.device)
        return patches + embeddings.position_embedding(positions)[None]

    embeddings.forward = forward


def load_reference(hf_dir: Path, layout: str):
    """The transformers model whose image features the ONNX export reproduces in `layout`
    ("mtmd": patches numbered by `sequential_positions`, "hf": transformers' own)."""
    import torch
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    if layout == "mtmd":
        sequential_positions(model)
    return model
