"""Qwen2-VL images for ONNX: `Qwen2VLImageProcessor` in numpy/Pillow, and the encoder around `vision.onnx` (export/onnx/qwen2vl.py).

The processor keeps the aspect ratio and resizes to sides that are multiples of patch·merge
with the pixel count inside [min_pixels, max_pixels] (`smart_resize`), rescales, normalises,
repeats the frame `temporal_patch_size` times (an image is a one-frame video), and cuts
patches in merge-block order: each merge² run of rows is one merged token, rows of merged
tokens left to right, top to bottom. The output is (patches, C·T·P·P) and the grid (t, h, w)
in patches; the language model sees t·h·w / merge² tokens.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from edge_et.core.images import LoadedImage
from edge_et.errors import InputError
from edge_et.formats.qwen2vl import rotary_table


def smart_resize(
    height: int, width: int, *, factor: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """(height, width) the HF processor resizes to; Python's round (half to even) as HF's."""
    if max(height, width) / min(height, width) > 200:
        raise InputError(f"the image is {width}x{height}: Qwen2-VL takes aspect ratios up to 200")
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def patch_grid(height: int, width: int, config: dict) -> tuple[int, int, int]:
    """(t, h, w) in patches for a picture of `height` x `width` pixels."""
    patch, merge = int(config["patch_size"]), int(config["merge_size"])
    h, w = smart_resize(
        height,
        width,
        factor=patch * merge,
        min_pixels=int(config["min_pixels"]),
        max_pixels=int(config["max_pixels"]),
    )
    return 1, h // patch, w // patch


def pixel_values(rgb: np.ndarray, config: dict) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The processor's (patches, C·T·P·P) float32 pixel values and the (t, h, w) patch grid."""
    from edge_et.backends.onnx.vision import normalize

    patch, merge = int(config["patch_size"]), int(config["merge_size"])
    temporal = int(config["temporal_patch_size"])
    t, gh, gw = patch_grid(rgb.shape[0], rgb.shape[1], config)
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    # Pillow's bicubic on uint8, as transformers' `resize` does (a same-size resize is a copy).
    resized = np.asarray(image.resize((gw * patch, gh * patch), resample=Image.Resampling.BICUBIC))
    frame = normalize(
        resized[None], config["mean"], config["std"], float(config.get("rescale", 1 / 255))
    )[0]  # (C, H, W)
    frames = np.repeat(frame[None], temporal, axis=0)  # (T, C, H, W)
    channels = frames.shape[1]
    blocks = frames.reshape(
        t, temporal, channels, gh // merge, merge, patch, gw // merge, merge, patch
    )
    # → (t, block row, block col, row in block, col in block, C, T, P, P)
    blocks = blocks.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return (
        np.ascontiguousarray(blocks.reshape(t * gh * gw, channels * temporal * patch * patch)),
        (t, gh, gw),
    )


class Qwen2VLEncoder:
    """A picture → its merged embeddings (and the grid the M-RoPE positions are laid out on).
    Qwen2.5-VL's graph (a `window_size` in the config) also takes its window mask."""

    def __init__(self, config: dict, folder: Path, session, cache):
        self.config, self._session, self._cache = config, session, cache
        self.merge = int(config["merge_size"])
        self.wrap = tuple(config.get("wrap") or ("", ""))
        self.image_token_id = int(config["image_token_id"])
        self.encodes = 0

    def forget(self, sha256: str | None = None) -> None:
        """Drop the cached embeddings (all, or one picture's): that picture is encoded again."""
        self._cache.clear() if sha256 is None else self._cache.discard(sha256)

    def token_grid(self, image: LoadedImage) -> tuple[int, int, int]:
        """(t, rows, cols) of the image's tokens after merging."""
        t, h, w = patch_grid(image.height, image.width, self.config)
        return t, h // self.merge, w // self.merge

    def count_tokens(self, image: LoadedImage) -> int:
        return math.prod(self.token_grid(image))

    def span_ids(self, image: LoadedImage) -> list[int]:
        """The picture's tokens inside `wrap`: an image token per merged patch."""
        return [self.image_token_id] * self.count_tokens(image)

    def pixel_values(self, rgb: np.ndarray) -> np.ndarray:
        return pixel_values(rgb, self.config)[0]

    def embed(self, image: LoadedImage) -> tuple[np.ndarray, bool]:
        """(embeddings (tokens, width) float32, whether they came from the cache)."""
        cached = self._cache.get(image.sha256)
        if cached is not None:
            return cached[0], True
        pixels, grid = pixel_values(image.rgb, self.config)
        heads = int(self.config["vision_heads"])
        cos, sin = rotary_table(
            grid, head_dim=int(self.config["vision_hidden"]) // heads, merge=self.merge
        )
        feeds = {"pixel_values": pixels, "rotary_cos": cos, "rotary_sin": sin}
        if self.config.get("window_size"):
            out = self._run_windowed(feeds, grid)
        else:
            out = self._session.run(None, feeds)[0]
        out = out.astype(np.float32, copy=False)
        self.encodes += 1
        self._cache.put(image.sha256, (out,))  # one call over all patches: the whole picture
        return out, False

    def _run_windowed(self, feeds: dict, grid: tuple[int, int, int]) -> np.ndarray:
        """Qwen2.5-VL: patches in window order with the window mask; tokens back in image order."""
        from edge_et.formats import qwen2vl as windows

        t, h, w = grid
        side = int(self.config["window_size"]) // self.merge // int(self.config["patch_size"])
        order, sizes = windows.window_order(
            (t, h // self.merge, w // self.merge), window_tokens=side
        )
        unit = self.merge * self.merge
        rows = windows.patch_order(order, unit)
        feeds = {name: value[rows] for name, value in feeds.items()}
        feeds["window_mask"] = windows.window_mask(sizes, unit)
        return self._session.run(None, feeds)[0][np.argsort(order)]
