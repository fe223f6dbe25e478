"""Idefics3 / SmolVLM through `vision.onnx`: the views (edge_et.formats.idefics3) normalised,
encoded, and laid out as the image span."""

from __future__ import annotations

import numpy as np

from edge_et.backends.onnx.vision import VisionEncoder, normalize
from edge_et.formats.idefics3 import (
    Layout,
    SpanTokens,
    count_views,
    grid_shape,
    make_views,
    span_ids,
)


def pixel_values(
    rgb: np.ndarray, layout: Layout, *, mean, std, rescale: float = 1 / 255
) -> np.ndarray:
    """The normalised views of one picture, (views, 3, tile, tile) float32, as the processor
    rescales and normalises them."""
    return normalize(np.stack(make_views(rgb, layout)), mean, std, rescale)


class Idefics3Encoder(VisionEncoder):
    """Idefics3 / SmolVLM through vision.onnx: the views' outputs in view order are the span's
    image embeddings (tiles row-major, then the global view)."""

    def __init__(self, config: dict, session):
        super().__init__(config, session)
        self.layout = Layout.from_config(config)
        self.tokens = SpanTokens.from_config(config["span_tokens"])

    def count_tokens(self, image) -> int:
        return count_views(image.height, image.width, self.layout) * self.layout.tokens

    def span_ids(self, image) -> list[int]:
        return span_ids(
            *grid_shape(image.height, image.width, self.layout), self.layout, self.tokens
        )

    def pixel_values(self, rgb: np.ndarray) -> np.ndarray:
        return pixel_values(
            rgb,
            self.layout,
            mean=self.config["mean"],
            std=self.config["std"],
            rescale=float(self.config.get("rescale", 1 / 255)),
        )

    def pack(self, per_view: np.ndarray, image) -> np.ndarray:
        return per_view.reshape(-1, per_view.shape[-1])
