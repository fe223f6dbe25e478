"""Qwen2-VL / Qwen2.5-VL vision layouts in numpy: the tower's 2-D rotary table, and Qwen2.5-VL's
window attention, laid out for `vision.onnx` (export/onnx/qwen2vl.py).

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
ROTARY_THETA = 10000.0  # the vision tower's (VisionRotaryEmbedding's default)


def window_order(grid: tuple[int, int, int], *, window_tokens: int) -> tuple[np.ndarray, list[int]]:
    """(merged-token indices in window order, tokens per window), for windows of
    `window_tokens` x `window_tokens` merged tokens over the grid (t, rows, cols)."""
    t, rows, cols = grid
    index = np.arange(t * rows * cols).reshape(t, rows, cols)
    order, sizes = [], []
    for frame in index:
        for top in range(0, rows, window_tokens):
            for left in range(0, cols, window_tokens):
                window = frame[top : top + window_tokens, left : left + window_tokens].ravel()
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


def rotary_table(
    grid: tuple[int, int, int], *, head_dim: int, merge: int
) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin (patches, head_dim) float32 of the tower's 2-D rotary embedding: half of each
    head's rotary frequencies turn with the patch row, half with its column (`rot_pos_emb`)."""
    t, h, w = grid
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    cols = np.broadcast_to(np.arange(w)[None, :], (h, w))

    def merge_order(pos):
        return pos.reshape(h // merge, merge, w // merge, merge).transpose(0, 2, 1, 3).ravel()

    quarter = head_dim // 4  # frequencies per axis: the rotary dim is head_dim / 2
    inv_freq = 1.0 / (
        np.float32(ROTARY_THETA) ** (np.arange(0, 2 * quarter, 2, dtype=np.float32) / (2 * quarter))
    )
    table = np.arange(max(h, w), dtype=np.float32)[:, None] * inv_freq[None, :].astype(np.float32)
    freqs = np.concatenate([table[merge_order(rows)], table[merge_order(cols)]], axis=1)
    freqs = np.tile(freqs, (t, 1))
    emb = np.concatenate([freqs, freqs], axis=1).astype(np.float32)
    return np.cos(emb), np.sin(emb)
