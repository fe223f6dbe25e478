"""Odd TIFFs: what Pillow logs or warns while decoding never reaches the terminal.

The files are Pillow-written TIFFs with one directory entry changed: more samples per pixel
than Pillow decodes (it logs an error, then fails) and a tag whose data runs past the end of
the file (it warns, skips the tag and decodes the rest).
"""

import io
import logging
import struct
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from edge_et.core.images import load_image
from edge_et.errors import EdgeEtError

SAMPLES_PER_PIXEL = 277
IMAGE_DESCRIPTION = 270


@contextmanager
def as_a_user_sees_it(monkeypatch):
    """Logging and warnings as outside pytest (which captures both): a log record with no
    handler goes to stderr through logging's last resort; `seen` gets every warning."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield seen


def tiff_with(path, tag: int, field: str, value: int, **save):
    """A small TIFF written by Pillow, then directory entry `tag`'s count or value set to `value`."""
    pixels = np.random.default_rng(0).integers(0, 255, (8, 8, 4), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="TIFF", **save)
    data = bytearray(buffer.getvalue())
    assert data[:4] == b"II*\0"  # little-endian: the layout unpacked below
    directory = struct.unpack_from("<I", data, 4)[0]
    for index in range(struct.unpack_from("<H", data, directory)[0]):
        entry = directory + 2 + 12 * index
        if struct.unpack_from("<H", data, entry)[0] == tag:
            if field == "count":
                struct.pack_into("<I", data, entry + 4, value)
            else:  # a SHORT value sits in the entry's first two value bytes
                struct.pack_into("<H", data, entry + 8, value)
            path.write_bytes(bytes(data))
            return path
    raise AssertionError(f"Pillow wrote no tag {tag}")


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])  # Pillow's reader, then libtiff's
def test_too_many_samples_is_one_error_line_and_nothing_on_stderr(
    tmp_path, capfd, monkeypatch, compression
):
    path = tiff_with(
        tmp_path / "extra-samples.tif", SAMPLES_PER_PIXEL, "value", 7, compression=compression
    )
    with as_a_user_sees_it(monkeypatch) as seen, pytest.raises(EdgeEtError) as caught:
        load_image(path)
    assert "More samples per pixel than can be decoded: 7" in str(caught.value)  # kept, not lost
    assert capfd.readouterr().err == "" and seen == []


def test_a_tag_past_the_end_of_the_file_is_skipped_quietly(tmp_path, capfd, monkeypatch):
    path = tiff_with(
        tmp_path / "long-tag.tif",
        IMAGE_DESCRIPTION,
        "count",
        10**6,
        tiffinfo={IMAGE_DESCRIPTION: "a description"},
    )
    with pytest.warns(UserWarning, match="Tag data larger than file"):
        Image.open(path).load()  # Pillow alone warns ...
    capfd.readouterr()
    with as_a_user_sees_it(monkeypatch) as seen:
        assert load_image(path).rgb.shape == (8, 8, 3)  # ... decoding through edge_et does not
    assert capfd.readouterr().err == "" and seen == []


def test_pillow_logging_is_left_as_it_was(tmp_path):
    handlers = list(logging.getLogger("PIL").handlers)
    with pytest.raises(EdgeEtError):
        load_image(tiff_with(tmp_path / "x.tif", SAMPLES_PER_PIXEL, "value", 7))
    assert logging.getLogger("PIL").handlers == handlers
