"""Pre-rendered training pictures: a scene stream's pixels, cached on disk in shards.

A training step renders its 16 scenes and resizes each to the 128 pixels the model sees
(model_view); benchmarks/results/train_step_profile.md measures that share. The picture of
example `index` depends only on the stream, the split seed and the renderer's code, and
every run of the perception sweep reads the same train stream, so the pictures are rendered
once: shards of SHARD pictures, uint8 128 x 128 x 3 (what model_view returns), under
`<cache>/scene-pixels/<stream>-s<seed>-<code digest>/<first index>.npz` (compressed: 1.2-1.3 MB
per 256 mixed-stream pictures, so the 3,000-step recipe's 48,000 take about 0.25 GB, not 2.4), each written to a
temporary file and renamed (a stop never leaves half a shard). The digest covers
export/scenes/*.py and the drawing libraries' versions, so a changed renderer renders again. A picture read back is the same
uint8 array, so the model's input is bit for bit what rendering gives: training stays
reproducible from the seed, cache or not (tests/export/test_train_shards.py).

benchmarks.perception_sweep trains with it (export.micro.train's `pixel_cache`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

SHARD = 256
SCENES = Path(__file__).resolve().parents[1] / "scenes"


def code_digest() -> str:
    """A digest of the scene generators and renderers and of the libraries that draw (Pillow's
    JPEG and resampling, numpy's generators, matplotlib): new code, new pictures."""
    import matplotlib
    import PIL

    digest = hashlib.sha256(f"{PIL.__version__} {np.__version__} {matplotlib.__version__}".encode())
    for path in sorted(SCENES.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def default_root() -> Path:
    from edge_et.core.cache import cache_root

    return cache_root() / "scene-pixels"


class PixelShards:
    """The model-view pictures of stream `stream`, split seed `seed`, rendered once per shard."""

    def __init__(self, root: Path | None, seed: int, stream: str):
        self.folder = Path(root or default_root()) / f"{stream}-s{seed}-{code_digest()}"
        self.seed, self.stream = seed, stream
        self._shard, self._array = -1, None

    def view(self, index: int) -> np.ndarray:
        """Example `index`'s picture as the model sees it: uint8, 128 x 128 x 3."""
        shard = index // SHARD
        if shard != self._shard:
            self._array, self._shard = self._load(shard), shard
        return self._array[index % SHARD]

    def pixels(self, index: int) -> np.ndarray:
        """The normalized 3 x 128 x 128 float32 input (export.micro.model.pixels)."""
        from export.micro.model import pixels

        return pixels(self.view(index))

    def _load(self, shard: int) -> np.ndarray:
        path = self.folder / f"{shard * SHARD:09d}.npz"
        if not path.is_file():
            self._render(shard, path)
        with np.load(path) as stored:
            return stored["views"]

    def _render(self, shard: int, path: Path) -> None:
        from export.scenes import example
        from export.scenes.varied import model_view

        first = shard * SHARD
        views = np.stack(
            [
                np.asarray(
                    model_view(example(self.seed, index, self.stream).image()), dtype=np.uint8
                )
                for index in range(first, first + SHARD)
            ]
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
        np.savez_compressed(partial, views=views)
        partial.replace(path)
