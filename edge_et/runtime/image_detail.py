"""`image_detail`: how closely the perception model looks at a picture (OpenAI's
`image_url.detail`).

`high` is what each model does by itself (its own tiling or resolution); `auto` is the bundle's
default, which is `high`; `low` is one cheap look, per kind of vision encoder:

- dynamic resolution (Qwen2/2.5/3-VL): the picture is shrunk to at most LOW_DYNAMIC_PIXELS
  (about 256 image tokens), aspect kept;
- llava-uhd slicing (Idefics3, SmolVLM): shrunk to one tile (longest side at most the encoder's
  image size), so there is no grid, one view;
- views of its own (LLaVA-OneVision anyres): the picture is marked `detail="low"` and the
  backend encodes its one global view (the base view) and none of the grid.

A lower look is another picture as far as caches go: its pixels (or its mark) change its hash.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from edge_et.core.images import LoadedImage, pixel_sha256
from edge_et.memory.footprint import VisionShape

LOW_DYNAMIC_PIXELS = 448 * 448  # Qwen-VL: 28 x 28 pixels a token, so about 256 tokens


def look(picture: LoadedImage, detail: str, shape: VisionShape | None) -> LoadedImage:
    """The picture as the perception model should see it at `detail` (auto and high: as is)."""
    if detail != "low" or shape is None:
        return picture
    if shape.dynamic:
        scale = (LOW_DYNAMIC_PIXELS / (picture.width * picture.height)) ** 0.5
        return _shrunk(picture, scale)
    if shape.projector == "idefics3":
        return _shrunk(picture, shape.image_size / max(picture.width, picture.height))
    if shape.max_tokens > shape.warmup_tokens:  # a grid of views beside a global one
        return replace(picture, detail="low", sha256=picture.sha256 + ":low")
    return picture  # one fixed-size view whatever the picture: low is what it does anyway


def _shrunk(picture: LoadedImage, scale: float) -> LoadedImage:
    if scale >= 1:
        return replace(picture, detail="low")
    width, height = max(1, round(picture.width * scale)), max(1, round(picture.height * scale))
    rgb = np.asarray(
        picture.to_pil().resize((width, height), Image.Resampling.BICUBIC), dtype=np.uint8
    ).copy()
    rgb.flags.writeable = False
    return replace(
        picture, rgb=rgb, width=width, height=height, sha256=pixel_sha256(rgb), detail="low"
    )
