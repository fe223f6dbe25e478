"""LLaVA-OneVision's image handling, in numpy and Pillow: anyres views in, packed embeddings out.

libmtmd encodes one fixed-size view at a time for an "mlp" projector but does not reproduce
LLaVA-OneVision's packing. So the runtime does what transformers' `LlavaOnevisionImageProcessor`
and `LlavaOnevisionModel.pack_image_features` do, step for step:

1. pick the best grid resolution from the pinpoints, resize the image into it keeping its aspect
   (bicubic, Pillow), pad the rest with black, cut it into tiles; the base view is the whole
   image squashed to one tile. Views: [base, tile(0,0), tile(0,1), ...] (row-major).
2. (libmtmd encodes each view: `side * side` embeddings of the LLM's width.)
3. lay the tile features out as one feature map, crop the padding back off ("unpad"), shrink
   it bilinearly when it exceeds `anyres_max_N` tiles by more than 10% in area (×1.21), append
   the image-newline vector to every row, and put the base view's features first.

Pure functions of sizes and arrays; `edge_et.backends.llama_cpp.llava_ov` does the llama.cpp side.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edge_et.errors import BundleError

# Metadata our mmproj writer puts into the GGUF (export/gguf/llava_ov_mmproj.py).
PACKING_KEY = "edge_et.image_packing"
PACKING = "llava_onevision"
PINPOINTS_KEY = "edge_et.llava_ov.grid_pinpoints"  # JSON [[height, width], ...]
ASPECT_KEY = "edge_et.llava_ov.vision_aspect_ratio"  # "anyres_max_9"
NEWLINE_TENSOR = "v.image_newline"
_FLOAT_TYPES = {0: np.float32, 1: np.float16}  # ggml types the newline may be stored as


@dataclass(frozen=True)
class Layout:
    """How a LLaVA-OneVision mmproj wants images cut and packed.

    tile: side of one view in pixels (the vision tower's image_size).
    side: features per view side (tile // patch size); a view gives side * side embeddings.
    pinpoints: the grid resolutions, (height, width) in pixels, multiples of `tile`.
    max_tiles: N of "anyres_max_N": feature maps larger than N tiles (×1.21) are shrunk.
    newline: the image-newline vector appended to each feature row, float32 (LLM width).
    """

    tile: int
    side: int
    pinpoints: tuple[tuple[int, int], ...]
    max_tiles: int
    newline: np.ndarray


def read_layout(mmproj_path: str | Path) -> Layout | None:
    """The packing layout of a LLaVA-OneVision mmproj, or None for any other mmproj."""
    from edge_et.formats.gguf import read_gguf_info

    info = read_gguf_info(mmproj_path)
    meta = info.metadata
    if meta.get(PACKING_KEY) != PACKING:
        return None
    tile, patch = int(meta["clip.vision.image_size"]), int(meta["clip.vision.patch_size"])
    aspect = str(meta.get(ASPECT_KEY, "anyres_max_9"))
    return Layout(
        tile=tile,
        side=tile // patch,
        pinpoints=tuple((int(h), int(w)) for h, w in json.loads(meta[PINPOINTS_KEY])),
        max_tiles=int(aspect.removeprefix("anyres_max_")),
        newline=_read_newline(info),
    )


def _read_newline(info) -> np.ndarray:
    tensor = next((t for t in info.tensors if t.name == NEWLINE_TENSOR), None)
    if tensor is None or tensor.ggml_type not in _FLOAT_TYPES or tensor.nbytes is None:
        raise BundleError(
            f"mmproj '{info.path.name}' declares LLaVA-OneVision packing but has "
            f"no float {NEWLINE_TENSOR} tensor"
        )
    with open(info.path, "rb") as handle:
        handle.seek(info.data_offset + tensor.offset)
        raw = handle.read(tensor.nbytes)
    return np.frombuffer(raw, dtype=_FLOAT_TYPES[tensor.ggml_type]).astype(np.float32)


# -- 1. views -------------------------------------------------------------------------------


def select_best_resolution(
    height: int, width: int, pinpoints: tuple[tuple[int, int], ...]
) -> tuple[int, int]:
    """The pinpoint that keeps the most of the image's pixels, then wastes the fewest."""
    best, best_kept, best_waste = pinpoints[0], 0, math.inf
    for target_h, target_w in pinpoints:
        scale = min(target_w / width, target_h / height)
        kept = min(int(width * scale) * int(height * scale), width * height)
        waste = target_w * target_h - kept
        if kept > best_kept or (kept == best_kept and waste < best_waste):
            best, best_kept, best_waste = (target_h, target_w), kept, waste
    return best


def fit_size(height: int, width: int, target: tuple[int, int]) -> tuple[int, int]:
    """The size the image is resized to inside `target`, aspect kept (rounded up, as HF does)."""
    target_h, target_w = target
    if target_w / width < target_h / height:
        return min(math.ceil(height * (target_w / width)), target_h), target_w
    return target_h, min(math.ceil(width * (target_h / height)), target_w)


def make_views(rgb: np.ndarray, layout: Layout) -> list[np.ndarray]:
    """The views to encode, each tile x tile x 3 uint8: the base view, then the grid row-major."""
    height, width = rgb.shape[:2]
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    grid_h, grid_w = select_best_resolution(height, width, layout.pinpoints)
    new_h, new_w = fit_size(height, width, (grid_h, grid_w))
    canvas = np.zeros((grid_h, grid_w, 3), dtype=np.uint8)  # HF pads with 0: black, not grey
    top, left = (grid_h - new_h) // 2, (grid_w - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = _resize(image, new_h, new_w)
    tiles = [
        canvas[y : y + layout.tile, x : x + layout.tile]
        for y in range(0, grid_h, layout.tile)
        for x in range(0, grid_w, layout.tile)
    ]
    return [_resize(image, layout.tile, layout.tile)] + [np.ascontiguousarray(t) for t in tiles]


def base_view(rgb: np.ndarray, layout: Layout) -> np.ndarray:
    """The one global view (the whole image squashed to one tile): `detail: low`."""
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    return _resize(image, layout.tile, layout.tile)


def _resize(image: Image.Image, height: int, width: int) -> np.ndarray:
    # Pillow's bicubic on uint8, as transformers' `resize` does for uint8 input.
    return np.asarray(image.resize((width, height), resample=Image.Resampling.BICUBIC))


# -- 3. packing -----------------------------------------------------------------------------


def _unpad_box(height: int, width: int, rows: int, cols: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the image inside a rows x cols feature map (HF unpad_image)."""
    if width / height > cols / rows:
        new_rows = int(round(height * (cols / width), 7))
        pad = (rows - new_rows) // 2
        return pad, rows - pad, 0, cols
    new_cols = int(round(width * (rows / height), 7))
    pad = (cols - new_cols) // 2
    return 0, rows, pad, cols - pad


def _shrunk(rows: int, cols: int, layout: Layout) -> tuple[int, int] | None:
    """The size anyres_max_N shrinks a rows x cols map to, or None when it stays."""
    ratio = math.sqrt(rows * cols / (layout.max_tiles * layout.side**2))
    return (int(rows // ratio), int(cols // ratio)) if ratio > 1.1 else None


def grid_shape(height: int, width: int, layout: Layout) -> tuple[int, int]:
    """Tiles (rows, cols) of the grid chosen for a height x width image."""
    grid_h, grid_w = select_best_resolution(height, width, layout.pinpoints)
    return grid_h // layout.tile, grid_w // layout.tile


def count_tokens(height: int, width: int, layout: Layout) -> int:
    """Embeddings a height x width image becomes: base view + rows x (cols + newline)."""
    tiles_h, tiles_w = grid_shape(height, width, layout)
    top, bottom, left, right = _unpad_box(
        height, width, tiles_h * layout.side, tiles_w * layout.side
    )
    rows, cols = bottom - top, right - left
    rows, cols = _shrunk(rows, cols, layout) or (rows, cols)
    return layout.side**2 + rows * (cols + 1)


def pack(views: np.ndarray, height: int, width: int, layout: Layout) -> np.ndarray:
    """Pack per-view embeddings (n_views, side*side, dim) of a height x width image into the
    sequence the LLM sees (n_tokens, dim), float32, as LlavaOnevisionModel does."""
    tiles_h, tiles_w = grid_shape(height, width, layout)
    side, dim = layout.side, views.shape[-1]
    if views.shape != (1 + tiles_h * tiles_w, side * side, dim):
        raise ValueError(
            f"expected {1 + tiles_h * tiles_w} views of {side * side} embeddings, got {views.shape}"
        )
    views = views.astype(np.float32, copy=False)
    grid = (
        views[1:]
        .reshape(tiles_h, tiles_w, side, side, dim)
        .transpose(0, 2, 1, 3, 4)
        .reshape(tiles_h * side, tiles_w * side, dim)
    )
    top, bottom, left, right = _unpad_box(height, width, *grid.shape[:2])
    grid = grid[top:bottom, left:right]
    target = _shrunk(*grid.shape[:2], layout)
    if target is not None:
        grid = bilinear_resize(grid, *target)
    newline = np.broadcast_to(layout.newline.astype(np.float32), (grid.shape[0], 1, dim))
    rows = np.concatenate([grid, newline], axis=1).reshape(-1, dim)
    return np.concatenate([views[0], rows], axis=0)


def bilinear_resize(features: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Resize an (H, W, C) map like torch's `interpolate(mode="bilinear", align_corners=False)`
    without antialiasing, in float32 as torch computes it on the CPU."""
    h0, h1, hl = _source_indices(features.shape[0], out_h)
    w0, w1, wl = _source_indices(features.shape[1], out_w)
    hl, wl = hl[:, None, None], wl[None, :, None]
    top = features[h0][:, w0] * (1 - wl) + features[h0][:, w1] * wl
    bottom = features[h1][:, w0] * (1 - wl) + features[h1][:, w1] * wl
    return (top * (1 - hl) + bottom * hl).astype(np.float32)


def _source_indices(size_in: int, size_out: int):
    scale = np.float32(size_in) / np.float32(size_out)
    src = np.maximum(
        (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5),
        np.float32(0),
    )
    low = np.minimum(src.astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (src - low).astype(np.float32)
