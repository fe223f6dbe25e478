"""Sampling from a logits vector in numpy, for backends that have no sampler of their own (ONNX).

The order is llama.cpp's chain as `LlamaCppModel` builds it, which is transformers' order:
repeat penalty, then greedy, or temperature, top-k, top-p, min-p and a draw from a seeded
generator. Greedy picks the first maximal logit, as llama.cpp's greedy sampler does, so greedy
runs of the two backends can agree token for token. The repeat penalty remembers what llama.cpp's
penalties sampler does: the last REPEAT_WINDOW tokens this sampler drew (a sampler lives from
the first draw after a prompt; neither prompt nor forced tokens count).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from edge_et.core.decoding import Sampling

REPEAT_WINDOW = 64  # what LlamaCppModel passes to llama_sampler_init_penalties


class Sampler:
    """Draws tokens for one generation; the generator is seeded from `sampling.seed` once."""

    def __init__(self, sampling: Sampling):
        self.sampling = sampling
        self._rng = np.random.default_rng(sampling.seed & 0xFFFFFFFF)
        self._recent: deque[int] = deque(maxlen=REPEAT_WINDOW)

    def __call__(self, logits: np.ndarray) -> int:
        """The next token for `logits` (float32, one row)."""
        token = self._draw(np.asarray(logits, dtype=np.float32))
        self._recent.append(token)
        return token

    def _draw(self, logits: np.ndarray) -> int:
        s = self.sampling
        if s.repeat_penalty != 1.0 and self._recent:
            logits = _penalize(logits, self._recent, s.repeat_penalty)
        if s.temperature <= 0:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / s.temperature
        keep = _candidates(scaled, s)
        probs = np.exp(scaled[keep] - scaled[keep].max())
        probs /= probs.sum()
        return int(keep[self._rng.choice(len(keep), p=probs)])


def _penalize(logits: np.ndarray, recent: Iterable[int], penalty: float) -> np.ndarray:
    """Positive logits divided by the penalty, negative ones multiplied (CTRL's rule)."""
    out = logits.copy()
    ids = np.unique(np.fromiter(recent, dtype=np.int64))
    values = out[ids]
    out[ids] = np.where(values > 0, values / penalty, values * penalty)
    return out


def _candidates(scaled: np.ndarray, s: Sampling) -> np.ndarray:
    """Token ids that survive top-k, then top-p, then min-p, most likely first."""
    order = np.argsort(-scaled, kind="stable")
    finite = order[np.isfinite(scaled[order])]
    order = finite if len(finite) else order[:1]
    if s.top_k > 0:
        order = order[: s.top_k]
    if s.top_p < 1.0 or s.min_p > 0:
        probs = np.exp(scaled[order] - scaled[order[0]])
        probs /= probs.sum()
        if s.top_p < 1.0:
            # Keep the smallest prefix whose mass reaches top_p (at least one token).
            cut = int(np.searchsorted(np.cumsum(probs), s.top_p)) + 1
            order, probs = order[:cut], probs[:cut]
        if s.min_p > 0:
            order = order[probs >= s.min_p * probs[0]]
    return order
