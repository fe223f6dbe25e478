"""Speculative decoding on a llama.cpp context: verify drafts in one batch, roll back the rest.

`Speculation` sits under `LlamaCppModel.append`/`sample`, so the runtime's token loop (budget
forcing, logit edits, streaming, stats) is unchanged: when `sample` must evaluate appended
tokens it also evaluates a draft behind them, with logits for every position. Each later
`sample` reads the next position's logits; each `append` confirms the next draft token when
it is the one the runtime kept (sampled or forced), else the unconfirmed drafts leave the KV
cache. The target samples every position itself, so greedy output is the same token for token
and sampled output keeps its distribution (see `edge_et.backends.drafting`).

`DraftModel` drafts with a second llama.cpp model of the same vocabulary (the perception
model's language model), greedily, in its own context kept in step with the target's history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import llama_cpp
import numpy as np

from edge_et.backends.drafting import Drafter, SpecCounts


class Speculation:
    """Drafts evaluated ahead on `llm` (a llama_cpp.Llama), confirmed or rolled back."""

    def __init__(self, llm: llama_cpp.Llama, drafter: Drafter):
        self.llm, self.drafter = llm, drafter
        self.draft: list[int] = []  # in the KV cache, not yet confirmed by the runtime
        self.logit_index = -1  # batch row whose logits the next sample reads
        self.counts = SpecCounts()
        self._batch = llama_cpp.llama_batch_init(llm.n_batch, 0, 1)

    def evaluate(self, pending: list[int], n_ctx: int) -> None:
        """Evaluate `pending` (non-empty) and, behind it, whatever the drafter proposes."""
        n_past = self.llm.n_tokens
        room = min(n_ctx - n_past - len(pending) - 1, self.llm.n_batch - len(pending))
        history = self.llm.input_ids[:n_past].tolist() + pending
        draft = self.drafter.propose(history, room) if room > 0 else []
        if not draft:
            self.llm.eval(pending)
            self.logit_index = -1
            return
        self._decode_all(pending + draft)
        self.draft, self.logit_index = list(draft), len(pending) - 1
        self.counts.drafted += len(draft)
        self.counts.rounds += 1

    def confirm(self, token: int) -> bool:
        """True when `token` is the next draft token (already evaluated); else the drafts go."""
        if not self.draft:
            return False
        if token == self.draft[0]:
            self.draft.pop(0)
            self.logit_index += 1
            self.counts.accepted += 1
            return True
        self.rollback()
        return False

    def rollback(self) -> None:
        """Drop unconfirmed drafts from the context (the next eval rewrites those positions)."""
        if self.draft:
            self.llm.n_tokens -= len(self.draft)
            llama_cpp.llama_memory_seq_rm(
                llama_cpp.llama_get_memory(self.llm.ctx), 0, self.llm.n_tokens, -1
            )
        self.draft, self.logit_index = [], -1

    def _decode_all(self, tokens: list[int]) -> None:
        n_past = self.llm.n_tokens
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.llm.ctx), 0, n_past, -1)
        batch = self._batch
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i] = token, n_past + i
            batch.n_seq_id[i], batch.seq_id[i][0], batch.logits[i] = 1, 0, True
        status = llama_cpp.llama_decode(self.llm.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed on a draft batch (status {status})")
        self.llm.input_ids[n_past : n_past + len(tokens)] = tokens
        self.llm.n_tokens = n_past + len(tokens)

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None


class DraftModel:
    """Greedy drafts from a second llama.cpp model sharing the target's vocabulary.

    Its context follows the target's history: the longest common prefix stays, the rest is
    evaluated, then up to `limit` tokens are drafted one by one, stopping early when the draft
    model's own top probability falls under `p_min` (a guess it doubts costs a verify slot).
    """

    name = "draft"

    def __init__(self, llm: llama_cpp.Llama, *, draft_max: int = 6, p_min: float = 0.5):
        self.llm, self.draft_max, self.p_min = llm, draft_max, p_min
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(llm.model))

    def reset(self) -> None:
        self.llm.reset()
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.llm.ctx), True)

    def propose(self, history: Sequence[int], limit: int) -> list[int]:
        limit = min(limit, self.draft_max, self.llm.n_ctx() - len(history) - 1)
        if limit < 1:
            return []
        self._sync(list(history))
        draft: list[int] = []
        while len(draft) < limit:
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.n_vocab,)
            )
            token = int(np.argmax(logits))
            top = 1.0 / float(np.sum(np.exp(logits - logits[token])))
            if top < self.p_min:
                break
            draft.append(token)
            if len(draft) < limit:
                self.llm.eval([token])
        return draft

    def _sync(self, history: list[int]) -> None:
        known = self.llm.input_ids[: self.llm.n_tokens].tolist()
        common = 0
        for a, b in zip(known, history):
            if a != b:
                break
            common += 1
        common = min(common, len(history) - 1)  # re-evaluate at least one for fresh logits
        self.llm.n_tokens = common
        self.llm.eval(history[common:])


def vocab_signature(llm: llama_cpp.Llama) -> dict:
    """What must agree for one model to draft for another: tokenizer type, special ids, and a
    hash of every token's text (in id order)."""
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    digest = hashlib.sha256()
    for token in range(n_vocab):
        digest.update(llama_cpp.llama_vocab_get_text(vocab, token) or b"")
        digest.update(b"\0")
    return {
        "type": int(llama_cpp.llama_vocab_type(vocab)),
        "n_vocab": n_vocab,
        "bos": int(llama_cpp.llama_vocab_bos(vocab)),
        "eos": int(llama_cpp.llama_vocab_eos(vocab)),
        "tokens_sha256": digest.hexdigest(),
    }


def vocab_mismatch(target: dict, draft: dict) -> str | None:
    """Why `draft` cannot draft for `target` (their `vocab_signature`s), or None when it can."""
    for key, what in (
        ("type", "tokenizer type"),
        ("n_vocab", "vocabulary size"),
        ("bos", "BOS id"),
        ("eos", "EOS id"),
        ("tokens_sha256", "token list"),
    ):
        if target[key] != draft[key]:
            return f"the {what} differs (reasoner {target[key]}, perception LM {draft[key]})"
    return None
