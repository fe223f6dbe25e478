"""Qwen3 (dense): the paper's reasoning model family, with a thinking chat template.

Tiny: 256 wide (K-quant friendly), 2 layers. Shapes: Qwen3-0.6B, -1.7B and -4B as in their
config.json files (all three tie embeddings), with a tokenizer padded to the real 151,936 rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from export.archs.base import ArchSpec, Blueprint, TinyBuilder
from export.tokenizer import PRE_TOKENIZER, build_tokenizer, padded_vocab

# Qwen3's chat template, reduced to what the runtime uses: ChatML turns, earlier assistant
# turns lose their reasoning, and `enable_thinking=false` pre-fills an empty think block.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- set content = message['content'] -%}"
    "{%- if message['role'] == 'assistant' and '</think>' in content -%}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
)

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_TOKENS = ["<think>", "</think>"]  # not "special" in Qwen3: they survive decoding
QWEN_VOCAB = 151_936  # the embedding rows of every Qwen2/2.5/3 checkpoint


def qwen_tokenizer(
    chat_template: str,
    *,
    special: Sequence[str] = (),
    plain: Sequence[str] = (),
    size: int | None = None,
):
    """A Qwen-style tokenizer: ChatML specials first, eos <|im_end|>, pad <|endoftext|>."""
    from transformers import Qwen2TokenizerFast

    return build_tokenizer(
        Qwen2TokenizerFast,
        special=QWEN_SPECIALS + list(special),
        plain=list(plain),
        chat_template=chat_template,
        size=size,
        eos="<|im_end|>",
        pad="<|endoftext|>",
    )


def blueprint(
    *,
    hidden: int = 256,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    head_dim: int | None = None,
    intermediate: int = 512,
    vocab: int | None = None,
    tie: bool = True,
    max_positions: int = 40_960,
    dtype: str = "float32",
) -> Blueprint:
    """A Qwen3ForCausalLM; `vocab` set pads the tokenizer to exactly that many rows."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = qwen_tokenizer(CHAT_TEMPLATE, plain=THINK_TOKENS, size=vocab)
    # As in real Qwen checkpoints: bos is <|endoftext|> but never prepended (no add_bos).
    config = Qwen3Config(
        vocab_size=vocab or padded_vocab(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim or hidden // heads,
        max_position_embeddings=max_positions,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tie,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype=dtype,
    )
    return Blueprint(Qwen3ForCausalLM, config, tokenizer)


def _shape(hidden: int, layers: int, heads: int, intermediate: int) -> dict:
    return dict(
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=8,
        head_dim=128,
        intermediate=intermediate,
        vocab=QWEN_VOCAB,
        tie=True,
        dtype="bfloat16",
    )


SPEC = ArchSpec(
    name="qwen3",
    role="reasoning",
    model_types=("qwen3",),
    build_tiny=TinyBuilder(blueprint),
    gguf_arch="qwen3",
    shapes={
        "qwen3-0.6b": _shape(1024, 28, 16, 3072),
        "qwen3-1.7b": _shape(2048, 28, 16, 6144),
        "qwen3-4b": _shape(2560, 36, 32, 9728),
    },
    thinking=True,
    pre_tokenizer=PRE_TOKENIZER,
    notes="Qwen3 dense, thinking template (<think> ... </think>); the paper's reasoner",
)
