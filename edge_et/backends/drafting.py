"""Draft tokens for speculative decoding, independent of any backend.

A drafter guesses the next tokens from the token history; the backend evaluates them in
one batch with the target model and keeps those the target itself produces (see
`llama_cpp/speculative.py`). Drafts are deterministic (a point mass), so sampling the target
at each drafted position and keeping the draft only when the sample equals it is exactly the
standard speculative-sampling rule for that draft: accept with probability p(draft), else
the sample is drawn from the residual (p minus the point mass, renormalised). The output
keeps the target's distribution, and with the same seed the same tokens, since the target
samples the same positions in the same order with or without drafts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

SPECULATIVE_MODES = ("auto", "off", "lookup", "draft")


class Drafter(Protocol):
    """Proposes up to `limit` tokens to follow `history` (all tokens in the context)."""

    name: str

    def propose(self, history: Sequence[int], limit: int) -> list[int]: ...


@dataclass
class SpecCounts:
    """Tokens drafted, drafts the target kept, and verification batches, over one stage."""

    drafted: int = 0
    accepted: int = 0
    rounds: int = 0

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None


class PromptLookup:
    """N-gram drafting from the context itself (prompt lookup decoding).

    The reasoner quotes the extraction and the question: the last `n` tokens (longest n
    first, from `ngram_max` down to `ngram_min`) are looked up earlier in the history, most
    recent occurrence first, and the tokens that followed are the draft.
    """

    name = "lookup"

    def __init__(self, *, ngram_max: int = 3, ngram_min: int = 2, draft_max: int = 8):
        if not 1 <= ngram_min <= ngram_max or draft_max < 1:
            raise ValueError("need 1 <= ngram_min <= ngram_max and draft_max >= 1")
        self.ngram_max, self.ngram_min, self.draft_max = ngram_max, ngram_min, draft_max

    def propose(self, history: Sequence[int], limit: int) -> list[int]:
        limit = min(limit, self.draft_max)
        tokens = np.asarray(history, dtype=np.int64)
        if limit < 1 or len(tokens) < self.ngram_min + 1:
            return []
        for n in range(min(self.ngram_max, len(tokens) - 1), self.ngram_min - 1, -1):
            start = _last_earlier_match(tokens, n)
            if start is not None:
                follow = tokens[start + n : start + n + limit]
                if len(follow):
                    return [int(t) for t in follow]
        return []


def _last_earlier_match(tokens: np.ndarray, n: int) -> int | None:
    """Start of the most recent earlier occurrence of the last `n` tokens, or None."""
    key = tokens[-n:]
    candidates = len(tokens) - n  # starts 0 .. len-n-1 end before the key itself
    hits = np.ones(candidates, dtype=bool)
    for offset in range(n):
        hits &= tokens[offset : offset + candidates] == key[offset]
    found = np.flatnonzero(hits)
    return int(found[-1]) if len(found) else None
