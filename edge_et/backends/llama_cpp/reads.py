"""What one decode step of a GGUF model reads from memory: every weight once and its KV cache,
the numerator of the memory-bandwidth limit that `edge-et bench` and `run --deadline` use."""

from __future__ import annotations

from edge_et.backends.llama_cpp.footprint import TextShape
from edge_et.formats.gguf import GGUFInfo

KV_ELEMENT_BYTES = 2  # f16 KV cache, llama.cpp's default and the runtime's


def decode_bytes_per_token(info: GGUFInfo, context_tokens: int) -> dict:
    """Bytes one decode step reads: every weight once, except that an untied token embedding
    is a lookup (one row), plus the f16 KV cache of `context_tokens` positions."""
    tensors = {t.name: t.nbytes or 0 for t in info.tensors}
    weights = sum(tensors.values())
    embedding = tensors.get("token_embd.weight", 0)
    if "output.weight" in tensors:  # untied: the embedding is not read as the output matrix
        rows = info.vocab_size or 1
        weights -= embedding - embedding // rows
    kv = kv_bytes_per_position(info, context_tokens) * context_tokens
    return {
        "weights_read_bytes": weights,
        "kv_read_bytes": kv,
        "context_tokens": context_tokens,
        "bytes_per_token": weights + kv,
    }


def kv_bytes_per_position(info: GGUFInfo, context_tokens: int) -> float:
    """Average f16 KV bytes per cached position at `context_tokens` (sliding-window layers
    read at most their window)."""
    try:
        shape = TextShape.from_gguf(info)
    except (ValueError, TypeError, KeyError):
        return 0.0
    total = 0
    for layer in range(shape.n_layer):
        swa = shape.is_swa(layer)
        cells = min(context_tokens, shape.n_swa) if swa else context_tokens
        k, v = (
            (shape.key_length_swa, shape.value_length_swa)
            if swa
            else (shape.key_length, shape.value_length)
        )
        total += cells * shape.n_head_kv[layer] * (k + v) * KV_ELEMENT_BYTES
    return total / max(context_tokens, 1)
