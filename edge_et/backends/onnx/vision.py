"""Images for ONNX vision-language models: HF preprocessing in numpy, `vision.onnx`, packing.

`vision.onnx` is the vision tower and projector of one architecture at a fixed view size
(export/onnx/vision.py): pixel_values (views, 3, tile, tile) float32 in, image_embeds
(views, tokens per view, LLM width) out. What happens around it depends on the `kind` recorded
in onnx_config.json:

- llava_onevision: the anyres views and the packing of `edge_et.formats.llava_ov` (the same
  code the llama.cpp path uses), the views normalised as `LlavaOnevisionImageProcessor` does
  (rescale by 1/255, then (x - mean) / std, in float32).
- qwen2_vl, qwen2_5_vl: one graph for any patch grid (edge_et/backends/onnx/qwen2vl.py): patches
  in, merged tokens out (Qwen2.5-VL: with its window mask, edge_et/formats/qwen2vl.py);
  the decoder places them with M-RoPE positions (edge_et/backends/onnx/mrope.py).
- idefics3 (SmolVLM too): tiles + global view and the delimiter tokens between them, in
  transformers' or in libmtmd's layout (`edge_et.formats.idefics3`).

Every encoder gives the prompt its image span (`span_ids`: token ids, `image_token_id` where
an embedding goes) and the embeddings that fill it, in order (`embed`); `wrap` are texts
around the span (Qwen's vision start and end).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_et.backends.image_cache import EmbeddingCache

# Views per vision.onnx call: a 6x6 grid is 37 views, and attention over all of them at once
# would hold 37 score matrices; a few at a time bound the encoder's memory (and its estimate).
from edge_et.backends.onnx.footprint import VIEW_BATCH
from edge_et.core.images import LoadedImage
from edge_et.formats import llava_ov

CACHE_BYTES = 256 * 2**20  # packed embeddings kept per picture hash (another question, same image)


def normalize(views: np.ndarray, mean, std, rescale: float) -> np.ndarray:
    """uint8 (N, H, W, 3) views → float32 (N, 3, H, W), as HF's rescale + normalize compute it."""
    # HF rescales in float64 and casts to float32, then normalises in float32.
    scaled = (views.astype(np.float64) * rescale).astype(np.float32)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    return np.ascontiguousarray(((scaled - mean) / std).transpose(0, 3, 1, 2))


def llava_ov_pixel_values(
    rgb: np.ndarray, layout: llava_ov.Layout, *, mean, std, rescale: float = 1 / 255
) -> np.ndarray:
    """LlavaOnevisionImageProcessor's pixel_values for one picture: (views, 3, tile, tile)."""
    return normalize(np.stack(llava_ov.make_views(rgb, layout)), mean, std, rescale)


class VisionEncoder:
    """Turns a picture into the embeddings the language model reads at the media marker.

    Subclasses cut and normalise the views (`pixel_values`), say how many embeddings a picture
    becomes (`count_tokens`) and lay the encoder's per-view outputs out (`pack`); this class
    runs vision.onnx VIEW_BATCH views at a time and keeps results per picture hash.
    """

    wrap = ("", "")  # no texts around the image's span

    def __init__(self, config: dict, session):
        self._session, self.config = session, config
        self._input = session.get_inputs()[0].name
        self.image_token_id = int(config["image_token_id"])
        self._cache = EmbeddingCache(CACHE_BYTES)
        self.encodes = 0
        # A mobile package fixes the number of views per call (NNAPI and CoreML want fixed
        # shapes): feed exactly that many, the last call padded.
        views = session.get_inputs()[0].shape[0]
        self._fixed_batch = views if isinstance(views, int) and views > 0 else None

    def _run_views(self, views: np.ndarray) -> np.ndarray:
        short = (self._fixed_batch or len(views)) - len(views)
        if short > 0:
            views = np.concatenate([views, np.zeros((short, *views.shape[1:]), views.dtype)])
        return self._session.run(None, {self._input: views})[0][: len(views) - short]

    def forget(self, sha256: str | None = None) -> None:
        """Drop the cached embeddings (all, or one picture's): that picture is encoded again."""
        self._cache.clear() if sha256 is None else self._cache.discard(sha256)

    def count_tokens(self, image: LoadedImage) -> int:
        raise NotImplementedError

    def pixel_values(self, rgb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def pack(self, per_view: np.ndarray, image: LoadedImage) -> np.ndarray:
        raise NotImplementedError

    def span_ids(self, image: LoadedImage) -> list[int]:
        """The picture's tokens in the prompt; `image_token_id` where an embedding goes."""
        return [self.image_token_id] * self.count_tokens(image)

    def embed(self, image: LoadedImage) -> tuple[np.ndarray, bool]:
        """(packed embeddings (n_tokens, width) float32, whether they came from the cache)."""
        cached = self._cache.get(image.sha256)
        if cached is not None:
            return cached[0], True
        pixels = self.pixel_values(image.rgb)
        batch = self._fixed_batch or VIEW_BATCH
        per_view = np.concatenate(
            [self._run_views(pixels[at : at + batch]) for at in range(0, len(pixels), batch)]
        )
        packed = self.pack(per_view.astype(np.float32, copy=False), image)
        self.encodes += 1
        self._cache.put(image.sha256, (packed,))  # every view, packed: the whole picture
        return packed, False


class LlavaOvEncoder(VisionEncoder):
    """LLaVA-OneVision: anyres views, unpadded feature grid with newline vectors."""

    def __init__(self, config: dict, folder: Path, session):
        super().__init__(config, session)
        newline = np.load(folder / config["newline"]).astype(np.float32)
        self.layout = llava_ov.Layout(
            tile=int(config["tile"]),
            side=int(config["side"]),
            pinpoints=tuple((int(h), int(w)) for h, w in config["pinpoints"]),
            max_tiles=int(config["max_tiles"]),
            newline=newline,
        )

    def count_tokens(self, image: LoadedImage) -> int:
        return llava_ov.count_tokens(image.height, image.width, self.layout)

    def pixel_values(self, rgb: np.ndarray) -> np.ndarray:
        """The normalised views of one picture, (views, 3, tile, tile) float32."""
        return llava_ov_pixel_values(
            rgb,
            self.layout,
            mean=self.config["mean"],
            std=self.config["std"],
            rescale=float(self.config.get("rescale", 1 / 255)),
        )

    def pack(self, per_view: np.ndarray, image: LoadedImage) -> np.ndarray:
        return llava_ov.pack(per_view, image.height, image.width, self.layout)
