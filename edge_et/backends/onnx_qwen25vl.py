"""Qwen2.5-VL's window attention, laid out in numpy for `vision.onnx` (export/onnx_qwen2vl.py).

Qwen2.5-VL's tower attends within windows of `window_size` pixels in most blocks and over the
whole image in `fullatt_block_indexes`. transformers reorders the merged tokens window by window
(`get_window_index`: windows row by row, tokens row by row inside each, edge windows cut
short), runs every block in that order and undoes it after the merger. The patch embedding and
the rotary table act per patch, so the runtime reorders the patches and their cos/sin rows
before the graph and the merged embeddings after it, and gives the graph the windows as an
additive block-diagonal mask; the graph itself knows which blocks use it.
"""

from __future__ import annotations

import numpy as np

MASKED = np.float32(np.finfo(np.float32).min)


def window_order(grid: tuple[int, int, int], *, window_tokens: int) -> tuple[np.ndarray, list[int]]:
    """(merged-token indices in window order, tokens per window), for windows of
    `window_tokens` x `window_tokens` merged tokens over the grid (t, rows, cols)."""
    t, rows, cols = grid
    index = np.arange(t * rows * cols).reshape(t, rows, cols)
    order, sizes = [], []
    for frame in index:
        for top in range(0, rows, window_tokens):
            for left in range(0, cols, window_tokens):
                window = frame[top:top + window_tokens, left:left + window_tokens].ravel()
                order.append(window)
                sizes.append(len(window))
    return np.concatenate(order), sizes


def window_mask(sizes: list[int], unit: int) -> np.ndarray:
    """(patches, patches) float32: 0 between patches of one window, MASKED otherwise."""
    bounds = np.repeat(np.arange(len(sizes)), np.asarray(sizes) * unit)
    return np.where(bounds[:, None] == bounds[None, :], np.float32(0), MASKED).astype(np.float32)


def patch_order(order: np.ndarray, unit: int) -> np.ndarray:
    """Patch rows in window order: each merged token is `unit` consecutive patches."""
    return (order[:, None] * unit + np.arange(unit)[None, :]).ravel()
