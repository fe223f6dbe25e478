"""M-RoPE positions (Qwen2-VL's language model): three rows, temporal / height / width.

Text tokens carry the same position in all three rows. An image's tokens, laid out on its
merged grid (t, rows, cols), get (s + t_i, s + row, s + col) with s the position after the
preceding text; the text after it continues at the largest position so far plus one. So a
prompt with an image uses fewer positions than it has tokens, and every later token sits at
its cache index plus the "rope delta" (largest position + 1 - prompt length), as transformers'
`Qwen2VLModel.get_rope_index` computes for one sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ROWS = 3

# A prompt segment: a run of that many text tokens, or an image's merged grid (t, rows, cols).
Segment = int | tuple[int, int, int]


def text_positions(start: int, count: int) -> np.ndarray:
    """(3, count) int64: start, start + 1, ... in every row."""
    return np.broadcast_to(np.arange(start, start + count, dtype=np.int64), (ROWS, count)).copy()


def grid_positions(grid: tuple[int, int, int]) -> np.ndarray:
    """(3, t·rows·cols) int64 positions of an image's tokens, from 0, in token order."""
    t, rows, cols = grid
    index = np.indices((t, rows, cols), dtype=np.int64)
    return index.reshape(ROWS, -1)


def prompt_positions(segments: Sequence[Segment]) -> np.ndarray:
    """(3, prompt length) positions of a prompt made of text runs and images, in order."""
    parts, start = [], 0
    for segment in segments:
        if isinstance(segment, tuple):
            part = grid_positions(segment) + start
        else:
            part = text_positions(start, segment)
        if part.size:
            parts.append(part)
            start = int(part.max()) + 1
    return np.concatenate(parts, axis=1) if parts else np.zeros((ROWS, 0), np.int64)
