"""Image embeddings kept for reuse (the same picture, another question), for every backend.

A cache entry is everything one picture produces, in order: libmtmd cuts a tiling model's
picture (Idefics3 / SmolVLM, any model that slices) into several image chunks, one per tile
plus the global view, and each chunk has embeddings of its own. Keying chunks by the picture
alone would hand every chunk the first one's embeddings; an entry therefore holds all of them.
Backends that pack a picture into one span (ONNX, LLaVA-OneVision) store a single part.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

Parts = tuple[np.ndarray, ...]


class EmbeddingCache:
    """A picture's embeddings (its parts in order) by picture hash, least recently used dropped
    first past a byte limit that counts every part; the newest picture is always kept.
    A limit of 0 keeps nothing: every picture is encoded every time (the reference in tests)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Parts] = OrderedDict()
        self.nbytes = 0

    def get(self, key: str) -> Parts | None:
        if key in self._items:
            self._items.move_to_end(key)
        return self._items.get(key)

    def put(self, key: str, parts: Sequence[np.ndarray]) -> None:
        if self.max_bytes <= 0:
            return
        self._drop(key)
        self._items[key] = tuple(parts)
        self.nbytes += _size(self._items[key])
        while self.nbytes > self.max_bytes and len(self._items) > 1:
            self._drop(next(iter(self._items)))

    def _drop(self, key: str) -> None:
        parts = self._items.pop(key, None)
        if parts is not None:
            self.nbytes -= _size(parts)

    def discard(self, key: str) -> None:
        """Forget one picture (e.g. one no later request will show again)."""
        self._drop(key)

    def clear(self) -> None:
        self._items.clear()
        self.nbytes = 0


def _size(parts: Parts) -> int:
    return sum(part.nbytes for part in parts)
