"""Fuzz image decoding: any bytes give an upright RGB picture or one InputError line."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given
from PIL import Image

from edge_et.core.images import load_image_bytes
from edge_et.errors import InputError
from tests.fuzz.mutate import mutated


def _encoded(fmt: str, mode: str, size=(9, 7), **save) -> bytes:
    image = Image.new(mode, size)
    image.putdata(
        [
            (i * 37) % 256
            if mode in ("L", "P")
            else tuple((i * k) % 256 for k in range(1, len(mode) + 1))
            for i in range(size[0] * size[1])
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


SEEDS = [
    _encoded("PNG", "RGB"),
    _encoded("PNG", "RGBA"),
    _encoded("PNG", "L"),
    _encoded("PNG", "P"),
    _encoded("JPEG", "RGB", quality=50),
    _encoded("GIF", "P"),
    _encoded("BMP", "RGB"),
    _encoded("WEBP", "RGB"),
    _encoded("TIFF", "RGB"),
    _encoded("PPM", "RGB"),
    _encoded("ICO", "RGBA", (16, 16)),
]
MAX_PIXELS = 1 << 20  # a mutated header may claim a huge picture: refused before decoding


@given(mutated(SEEDS))
def test_image_bytes_decode_or_fail_in_one_line(data: bytes):
    try:
        picture = load_image_bytes(data, max_pixels=MAX_PIXELS)
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert picture.rgb.dtype == np.uint8 and picture.rgb.ndim == 3 and picture.rgb.shape[2] == 3
    assert 0 < picture.rgb.shape[0] * picture.rgb.shape[1] <= MAX_PIXELS
