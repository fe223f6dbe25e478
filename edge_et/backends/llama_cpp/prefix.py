"""Prefix reuse: keep the KV cache of the tokens a new prompt shares with the last one.

Every request to the reasoner starts with the same fixed text (chat template, system turn,
the instruction before the description), so the KV state of that prefix is computed once per
process and kept: a new prompt trims the cache to the longest common prefix of the tokens
already in the context and its own (llama.cpp's `llama_memory_seq_rm`, which `Llama.eval`
calls at `n_tokens`) and evaluates only the rest. At least one token is always evaluated so
the next sample has fresh logits. Only text contexts qualify: after an image prompt the
token ids at image positions stand for embeddings, so that context is cleared instead.
"""

from __future__ import annotations

from typing import Sequence

import llama_cpp


def common_prefix(known: Sequence[int], tokens: Sequence[int]) -> int:
    """How many leading tokens `known` and `tokens` share."""
    count = 0
    for a, b in zip(known, tokens):
        if a != b:
            break
        count += 1
    return count


def keep_prefix(llm: llama_cpp.Llama, tokens: Sequence[int]) -> int:
    """Trim `llm`'s context to what `tokens` can reuse; returns the reused token count."""
    reused = min(common_prefix(llm.input_ids[:llm.n_tokens].tolist(), tokens), len(tokens) - 1)
    reused = max(reused, 0)
    llm.n_tokens = reused
    llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm.ctx), 0, reused, -1)
    return reused
