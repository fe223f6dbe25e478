"""Image embeddings kept for reuse (the same picture, another question), for every backend."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


class EmbeddingCache:
    """Image embeddings by picture hash, least recently used dropped first past a byte limit."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, key: str) -> np.ndarray | None:
        if key in self._items:
            self._items.move_to_end(key)
        return self._items.get(key)

    def put(self, key: str, value: np.ndarray) -> None:
        self._items[key] = value
        while sum(v.nbytes for v in self._items.values()) > self.max_bytes and len(self._items) > 1:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()
