"""Idefics3 / SmolVLM image layouts, in numpy and Pillow: the views and the image span.

`vision.onnx` (export/onnx/idefics3.py) maps views (views, 3, tile, tile) to connector outputs
(views, tokens per view, LLM width): SigLIP with its patch positions baked in as constants, then
the pixel-shuffle connector. This module cuts the views and writes the tokens around them.

Two layouts, recorded as `layout` in the vision section of onnx_config.json:

- "hf" (default for real checkpoints) is what transformers' `Idefics3ImageProcessor` and
  `Idefics3Processor` do: resize the longest edge to `longest_edge` (Pillow, the processor's
  resample), resize up to tile multiples as `resize_for_vision_encoder` computes them (the short
  side from the rounded long side), cut the tiles row-major and add the whole image squashed to
  one tile ("global"); an image that fits one tile is sent once, without a grid:
  `<fake><global-img>` n x `<image>` `<fake>`. Patch positions are transformers' own
  (4.57 buckets fp32 fractions: [0, 0, 1, 2] for 4 patches a side, docs/pitfalls.md, 5).
- "mtmd" is what libmtmd (llama.cpp) does with the same checkpoint: each side rounded up to tile
  multiples on its own, Lanczos always, and every image gets a grid, so a one-tile image becomes
  `<fake><row_1_col_1>` n x `<image>` "\\n\\n" `<fake><global-img>` n x `<image>` `<fake>`
  (pitfall 3); patches numbered 0..N-1. The micro models trained by export.micro.train were
  trained in this layout (export/micro/model.py), and a GGUF twin of the same weights answers
  like an ONNX bundle only in this layout.

For a grid both layouts write the same tokens: each tile `<fake><row_r_col_c>` + n images, "\\n"
after every row but the last, then "\\n\\n" `<fake><global-img>` + n images + `<fake>`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from edge_et.errors import BundleError

LAYOUTS = ("hf", "mtmd")
LANCZOS = int(Image.Resampling.LANCZOS)  # libmtmd resamples Idefics3 images with Lanczos only


@dataclass(frozen=True)
class Layout:
    """How one checkpoint wants its images cut (the vision section of onnx_config.json).

    tile: side of one view (the vision tower's image_size, the processor's max_image_size).
    longest_edge: the processor's size["longest_edge"]: images are resized to it first.
    tokens: image tokens one view becomes after the pixel shuffle.
    mode: "hf" or "mtmd" (module docstring). resample: Pillow filter of the "hf" resizes.
    split: the processor's do_image_splitting ("hf" only; libmtmd always tiles).
    """

    tile: int
    longest_edge: int
    tokens: int
    mode: str = "hf"
    resample: int = LANCZOS
    split: bool = True

    @classmethod
    def from_config(cls, vision: dict) -> Layout:
        mode = str(vision.get("layout", "hf"))
        if mode not in LAYOUTS:
            raise BundleError(
                f"onnx_config.json: image layout {mode!r} is not known; known: {', '.join(LAYOUTS)}"
            )
        return cls(
            tile=int(vision["tile"]),
            longest_edge=int(vision["longest_edge"]),
            tokens=int(vision["tokens_per_view"]),
            mode=mode,
            resample=int(vision.get("resample", LANCZOS)),
            split=bool(vision.get("do_image_splitting", True)),
        )

    @property
    def filter(self) -> int:
        return LANCZOS if self.mode == "mtmd" else self.resample


def resized_size(height: int, width: int, longest: int) -> tuple[int, int]:
    """The longest edge set to `longest`, the other by the aspect ratio, truncated, then made
    even (`_resize_output_size_rescale_to_max_len`; libmtmd computes the same). The processor's
    4096-pixel cap never binds below a longest edge of 4096."""
    aspect = width / height
    if width >= height:
        width, height = longest, int(longest / aspect)
        height += height % 2
    else:
        height, width = longest, int(longest * aspect)
        width += width % 2
    return max(height, 1), max(width, 1)


def refined_size(height: int, width: int, layout: Layout) -> tuple[int, int]:
    """The resized image grown to tile multiples: per side in libmtmd, and in transformers
    (`resize_for_vision_encoder`) the short side from the already rounded long side."""
    tile = layout.tile
    if layout.mode == "mtmd":
        return math.ceil(height / tile) * tile, math.ceil(width / tile) * tile
    aspect = width / height
    # At least one tile: for a sliver (1 x 300) transformers computes a side of 0 and fails.
    if width >= height:
        width = math.ceil(width / tile) * tile
        height = max(1, math.ceil(int(width / aspect) / tile)) * tile
    else:
        height = math.ceil(height / tile) * tile
        width = max(1, math.ceil(int(height * aspect) / tile)) * tile
    return height, width


def grid_shape(height: int, width: int, layout: Layout) -> tuple[int, int]:
    """Tile (rows, cols) of a height x width picture; (0, 0): sent once, without a grid."""
    if layout.mode == "hf" and not layout.split:
        return 0, 0
    rows, cols = (
        side // layout.tile
        for side in refined_size(*resized_size(height, width, layout.longest_edge), layout)
    )
    if layout.mode == "hf" and rows == cols == 1:
        return 0, 0
    return rows, cols


def count_views(height: int, width: int, layout: Layout) -> int:
    rows, cols = grid_shape(height, width, layout)
    return rows * cols + 1


def max_views(layout: Layout) -> int:
    """Views of the largest grid: a square picture fills ceil(longest / tile) tiles a side."""
    side = math.ceil(layout.longest_edge / layout.tile)
    single = layout.mode == "hf" and (not layout.split or side == 1)
    return 1 if single else side * side + 1


def max_span(layout: Layout, tokens: SpanTokens) -> int:
    """Prompt tokens of the largest picture's span (views, delimiters and all)."""
    side = math.isqrt(max_views(layout) - 1)  # 0: one view, no grid
    return len(span_ids(side, side, layout, tokens))


def _resize(image: Image.Image, height: int, width: int, resample: int) -> Image.Image:
    # Same size: Pillow and libmtmd both copy, so no filter touches the pixels.
    return image if image.size == (width, height) else image.resize((width, height), resample)


def make_views(rgb: np.ndarray, layout: Layout) -> list[np.ndarray]:
    """The views to encode, tile x tile x 3 uint8 each: the tiles row-major, then the global
    image (or the one view of a picture sent without a grid)."""
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    height, width = rgb.shape[:2]
    resample, tile = layout.filter, layout.tile
    resized = _resize(image, *resized_size(height, width, layout.longest_edge), resample)
    if layout.mode == "hf" and not layout.split:
        return [np.asarray(_resize(resized, tile, tile, resample))]
    refined = np.asarray(_resize(resized, *refined_size(*resized.size[::-1], layout), resample))
    rows, cols = grid_shape(height, width, layout)
    tiles = [
        np.ascontiguousarray(refined[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile])
        for r in range(rows)
        for c in range(cols)
    ]
    overview = _resize(Image.fromarray(refined), tile, tile, resample)
    return tiles + [np.asarray(overview)]


@dataclass(frozen=True)
class SpanTokens:
    """Token ids of the image span's delimiters (the export reads them from the tokenizer).

    fake, global_img, image: `<fake_token_around_image>`, `<global-img>`, `<image>`.
    newline, blank: the ids of "\\n" and of "\\n\\n" (one token in SmolVLM vocabularies).
    tiles: `<row_r_col_c>` ids, tiles[r - 1][c - 1].
    """

    fake: int
    global_img: int
    image: int
    newline: tuple[int, ...]
    blank: tuple[int, ...]
    tiles: tuple[tuple[int, ...], ...]

    @classmethod
    def from_config(cls, tokens: dict) -> SpanTokens:
        return cls(
            fake=int(tokens["fake"]),
            global_img=int(tokens["global"]),
            image=int(tokens["image"]),
            newline=tuple(tokens["newline"]),
            blank=tuple(tokens["blank"]),
            tiles=tuple(tuple(int(t) for t in row) for row in tokens["tiles"]),
        )


def span_ids(rows: int, cols: int, layout: Layout, tokens: SpanTokens) -> list[int]:
    """The image span for a rows x cols grid ((0, 0): one view, no grid), image tokens included."""
    images = [tokens.image] * layout.tokens
    overview = [tokens.fake, tokens.global_img] + images + [tokens.fake]
    if rows == cols == 0:
        return overview
    if rows > len(tokens.tiles) or cols > len(tokens.tiles[0]):
        raise ValueError(
            f"a {rows} x {cols} grid needs <row_{rows}_col_{cols}>, which the tokenizer lacks"
        )
    ids: list[int] = []
    for r in range(rows):
        for c in range(cols):
            ids += [tokens.fake, tokens.tiles[r][c]] + images
        ids += list(tokens.newline) if r < rows - 1 else []
    return ids + list(tokens.blank) + overview
