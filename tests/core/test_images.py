"""Tests for edge_et.core.images: every image is made here with Pillow, in tmp_path."""

from __future__ import annotations

import os
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_et.core.images import (
    DEFAULT_MAX_PIXELS,
    SAMPLE_ANSWER,
    SAMPLE_DESCRIPTION,
    SAMPLE_QUESTION,
    LoadedImage,
    load_image,
    load_image_bytes,
    pixel_sha256,
    write_sample_image,
)
from edge_et.errors import EdgeEtError, InputError

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def save(image: Image.Image, path: Path, **params) -> Path:
    image.save(path, **params)
    return path


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR declaring any size, with no pixel data at all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def noise(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def user_error(path_or_bytes, **kwargs) -> str:
    """Load something bad; return the InputError message after checking its shape."""
    with pytest.raises(InputError) as caught:
        if isinstance(path_or_bytes, bytes):
            load_image_bytes(path_or_bytes, name="upload.bin", **kwargs)
        else:
            load_image(path_or_bytes, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    expected_name = "upload.bin" if isinstance(path_or_bytes, bytes) else os.fspath(path_or_bytes)
    assert expected_name in message
    return message


# --- the result -------------------------------------------------------------


def test_loaded_image_fields(tmp_path):
    source = noise(40, 30)
    loaded = load_image(save(source, tmp_path / "n.png"))
    assert isinstance(loaded, LoadedImage)
    assert loaded.rgb.shape == (30, 40, 3)
    assert loaded.rgb.dtype == np.uint8
    assert loaded.rgb.flags.c_contiguous
    assert not loaded.rgb.flags.writeable
    assert (loaded.width, loaded.height) == (40, 30)
    assert loaded.format == "PNG" and loaded.original_mode == "RGB"
    assert loaded.source == str(tmp_path / "n.png")
    assert np.array_equal(loaded.rgb, np.asarray(source))
    assert "rgb=" not in repr(loaded)


def test_accepts_str_and_pathlike(tmp_path):
    path = save(noise(), tmp_path / "n.png")
    assert load_image(str(path)).sha256 == load_image(path).sha256
    assert load_image(path).source == str(path)


def test_png_bytes_round_trip(tmp_path):
    loaded = load_image(save(noise(), tmp_path / "n.png"))
    again = load_image_bytes(loaded.to_png_bytes(), name="again.png")
    assert again.sha256 == loaded.sha256
    assert again.source == "again.png"
    assert loaded.to_pil().mode == "RGB"


# --- the hash ---------------------------------------------------------------


def test_hash_equal_across_formats_for_same_pixels(tmp_path):
    picture = noise(33, 17)
    png = load_image(save(picture, tmp_path / "a.png"))
    webp = load_image(save(picture, tmp_path / "a.webp", lossless=True))
    bmp = load_image(save(picture, tmp_path / "a.bmp"))
    assert webp.format == "WEBP"
    assert png.sha256 == webp.sha256 == bmp.sha256


def test_hash_differs_for_different_pixels_or_shape(tmp_path):
    picture = np.asarray(noise(6, 2))
    changed = picture.copy()
    changed[0, 0, 0] ^= 1
    assert pixel_sha256(picture) != pixel_sha256(changed)
    # Same bytes, other shape.
    assert pixel_sha256(picture) != pixel_sha256(picture.reshape(6, 2, 3))
    one = load_image(save(Image.fromarray(picture), tmp_path / "one.png"))
    two = load_image(save(Image.fromarray(changed), tmp_path / "two.png"))
    assert one.sha256 != two.sha256


# --- EXIF orientation -------------------------------------------------------


def quadrants() -> np.ndarray:
    """32x16 picture whose four quadrants differ, so every flip or turn shows."""
    pixels = np.zeros((16, 32, 3), dtype=np.uint8)
    pixels[:8, :16], pixels[:8, 16:] = RED, GREEN
    pixels[8:, :16], pixels[8:, 16:] = BLUE, WHITE
    return pixels


# What a viewer shows for each EXIF orientation of the stored pixels.
SHOWN = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=1),
}


@pytest.mark.parametrize("orientation", sorted(SHOWN))
def test_exif_orientation_png(tmp_path, orientation):
    stored = Image.fromarray(quadrants())
    exif = stored.getexif()
    exif[0x0112] = orientation
    loaded = load_image(save(stored, tmp_path / f"o{orientation}.png", exif=exif))
    expected = SHOWN[orientation](quadrants())
    assert np.array_equal(loaded.rgb, expected)
    assert (loaded.height, loaded.width) == expected.shape[:2]


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_jpeg(tmp_path, orientation):
    stored = Image.fromarray(np.kron(quadrants(), np.ones((4, 4, 1), dtype=np.uint8)))
    exif = stored.getexif()
    exif[0x0112] = orientation
    loaded = load_image(save(stored, tmp_path / "o.jpg", exif=exif, quality=95))
    expected = SHOWN[orientation](np.asarray(stored)).astype(int)
    # JPEG is lossy: compare the centre of each quadrant only.
    h, w = expected.shape[:2]
    for y, x in [
        (h // 4, w // 4),
        (h // 4, 3 * w // 4),
        (3 * h // 4, w // 4),
        (3 * h // 4, 3 * w // 4),
    ]:
        assert np.abs(loaded.rgb[y, x].astype(int) - expected[y, x]).max() < 20


def test_broken_exif_is_ignored_not_fatal(tmp_path):
    path = save(noise(), tmp_path / "n.jpg", exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_image(path)
    assert loaded.rgb.shape == (48, 64, 3)


# --- pixel modes ------------------------------------------------------------


def palette_image(transparent_index: int | None) -> Image.Image:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 10, 200, 30] + [0, 0, 0] * 254)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    if transparent_index is not None:
        image.info["transparency"] = transparent_index
    return image


def pa_image() -> Image.Image:
    image = Image.frombytes(
        "PA", (2, 1), bytes([0, 0, 1, 255])
    )  # index 0 transparent, index 1 opaque
    image.putpalette([255, 0, 0, 10, 200, 30] + [0, 0, 0] * 254)
    return image


def gray16(mode: str, values: list[int]) -> Image.Image:
    array = np.array([values], dtype=">u2" if mode == "I;16B" else "<u2")
    return Image.frombytes(mode, (len(values), 1), array.tobytes())


MODE_CASES = {
    # name: (image maker, file suffix, expected RGB of each pixel in row 0)
    "P": (lambda: palette_image(None), "png", [RED, (10, 200, 30)]),
    "P-transparent": (lambda: palette_image(0), "png", [WHITE, (10, 200, 30)]),
    "P-gif-transparent": (lambda: palette_image(0), "gif", [WHITE, (10, 200, 30)]),
    "1": (
        lambda: Image.frombytes("1", (8, 1), bytes([0b10100000])),
        "png",
        [WHITE, BLACK, WHITE, BLACK],
    ),
    "L": (lambda: Image.frombytes("L", (2, 1), bytes([0, 77])), "png", [BLACK, (77, 77, 77)]),
    "LA": (
        lambda: Image.frombytes("LA", (3, 1), bytes([0, 0, 100, 255, 0, 128])),
        "png",
        [WHITE, (100, 100, 100), (127, 127, 127)],
    ),
    "RGBA": (
        lambda: Image.frombytes(
            "RGBA", (3, 1), bytes([0, 0, 0, 0, 0, 0, 255, 255, 255, 0, 0, 128])
        ),
        "png",
        [WHITE, BLUE, (255, 127, 127)],
    ),
    "RGBA-webp": (
        lambda: Image.frombytes("RGBA", (2, 1), bytes([0, 0, 0, 0, 0, 255, 0, 255])),
        "webp",
        [WHITE, GREEN],
    ),
    "PA": (pa_image, "tiff", [WHITE, (10, 200, 30)]),
    "CMYK": (
        lambda: Image.frombytes("CMYK", (2, 1), bytes([0, 255, 255, 0, 0, 0, 0, 255])),
        "tiff",
        [RED, BLACK],
    ),
    "I;16": (
        lambda: gray16("I;16", [0, 1000, 32768, 65535]),
        "png",
        [BLACK, (4,) * 3, (128,) * 3, WHITE],
    ),
    "I;16-tiff": (lambda: gray16("I;16", [0, 32768, 65535]), "tiff", [BLACK, (128,) * 3, WHITE]),
    "I;16B": (lambda: gray16("I;16B", [0, 32768, 65535]), "tiff", [BLACK, (128,) * 3, WHITE]),
    "I-16bit-range": (
        lambda: Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32)),
        "tiff",
        [BLACK, (128,) * 3, WHITE],
    ),
    "I-signed": (
        lambda: Image.fromarray(np.array([[-100000, 0, 100000]], dtype=np.int32)),
        "tiff",
        [BLACK, (128,) * 3, WHITE],
    ),
    "F-unit": (
        lambda: Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)),
        "tiff",
        [BLACK, (128,) * 3, WHITE],
    ),
    "F-wide": (
        lambda: Image.fromarray(np.array([[-2.0, 0.0, 2.0, np.nan]], dtype=np.float32)),
        "tiff",
        [BLACK, (128,) * 3, WHITE, (128,) * 3],
    ),
}


@pytest.mark.parametrize("case", sorted(MODE_CASES))
def test_mode_converts_to_rgb(tmp_path, case):
    make, suffix, expected = MODE_CASES[case]
    source = make()
    loaded = load_image(save(source, tmp_path / f"m.{suffix}"))
    assert loaded.rgb.shape[2] == 3
    got = [tuple(int(v) for v in loaded.rgb[0, x]) for x in range(len(expected))]
    assert np.abs(np.array(got) - np.array(expected)).max() <= 1, (loaded.original_mode, got)


def test_original_mode_is_reported(tmp_path):
    # Pillow < 10.1 opens 16-bit PNG as "I".
    assert load_image(save(gray16("I;16", [0, 65535]), tmp_path / "g.png")).original_mode in (
        "I;16",
        "I",
    )
    assert load_image(save(palette_image(0), tmp_path / "p.png")).original_mode == "P"


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16)[np.newaxis, :]
    loaded = load_image(save(Image.fromarray(ramp), tmp_path / "ramp.png"))
    gray = loaded.rgb[0, :, 0].astype(int)
    assert np.all(np.diff(gray) >= 0)
    assert np.abs(gray - np.arange(256)).max() <= 1
    assert (gray == 255).sum() <= 2  # Pillow's own convert() would make most of it white


def test_ycbcr_tiff(tmp_path):
    source = Image.frombytes("YCbCr", (1, 1), bytes([76, 85, 255]))
    path = save(source, tmp_path / "y.tiff")
    try:
        with Image.open(path) as check:
            check.load()
    except OSError:
        pytest.skip("this Pillow cannot read back its own YCbCr TIFF")
    loaded = load_image(path)
    assert loaded.original_mode == "YCbCr"
    assert np.abs(loaded.rgb[0, 0].astype(int) - RED).max() <= 3


def test_lab_tiff(tmp_path):
    # sRGB red is L=53 a=80 b=67. In memory Pillow keeps L*2.55 and a, b
    # offset by 128; TIFF files hold a, b signed, which Pillow's reader
    # converts but its writer does not, so give the writer the file's bytes.
    source = Image.frombytes("LAB", (1, 1), bytes([136, 80, 67]))
    loaded = load_image(save(source, tmp_path / "lab.tiff"))
    assert loaded.original_mode == "LAB"
    red, green, blue = (int(v) for v in loaded.rgb[0, 0])
    assert red > 235 and green < 30 and blue < 30


# --- animations -------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["gif", "png", "webp"])
def test_animation_gives_first_frame(tmp_path, suffix):
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, GREEN, BLUE)]
    extra = {"lossless": True} if suffix == "webp" else {}
    path = save(
        frames[0],
        tmp_path / f"anim.{suffix}",
        save_all=True,
        append_images=frames[1:],
        duration=100,
        loop=0,
        **extra,
    )
    with Image.open(path) as check:
        assert getattr(check, "n_frames", 1) == 3
    loaded = load_image(path)
    assert np.all(loaded.rgb == np.array(RED, dtype=np.uint8))


# --- size limits ------------------------------------------------------------


@pytest.mark.parametrize("side", [100_000, 10_000, 9_000])
def test_bomb_header_refused_fast(tmp_path, side):
    # 100000^2 trips Pillow's own error, 10000^2 its warning, 9000^2 only our limit.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(side, side))
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        message = user_error(path)
    # The limit is read from the header: no pixel is decoded. The bound is generous on purpose
    # (a loaded 2-core runner); the message is the real check. Speed is benchmarked elsewhere.
    assert time.perf_counter() - started < 30
    assert "megapixels" in message


def test_bomb_bytes_refused(tmp_path):
    message = user_error(png_header_only(100_000, 100_000))
    assert "decompression bomb" in message


def test_max_pixels_is_honoured(tmp_path):
    path = save(noise(64, 48), tmp_path / "n.png")
    assert "over the limit" in user_error(path, max_pixels=64 * 48 - 1)
    assert load_image(path, max_pixels=64 * 48).width == 64
    assert DEFAULT_MAX_PIXELS >= 32_000_000


@pytest.mark.parametrize("size", [(0, 10), (10, 0)])
def test_zero_size_refused(tmp_path, size):
    path = tmp_path / "zero.png"
    path.write_bytes(png_header_only(*size))
    user_error(path)


# --- bad files --------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_truncated_file(tmp_path, suffix):
    whole = save(noise(128, 96), tmp_path / f"whole.{suffix}").read_bytes()
    path = tmp_path / f"cut.{suffix}"
    path.write_bytes(whole[: len(whole) // 2])
    assert "truncated" in user_error(path)


def test_corrupt_png_data(tmp_path):
    data = bytearray(save(noise(), tmp_path / "n.png").read_bytes())
    start = data.index(b"IDAT") + 20
    data[start : start + 64] = bytes(64)
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    user_error(path)


def test_text_file(tmp_path):
    path = tmp_path / "page.jpg"
    path.write_text("<html><body>404 Not Found</body></html>\n")
    assert "text" in user_error(path)


def test_binary_non_image(tmp_path):
    path = tmp_path / "random.png"
    path.write_bytes(b"\xde\xad\xbe\xef" * 256)  # byte 1 not 0 or 1, so not even TGA
    assert "not a recognised image" in user_error(path)


def test_refused_format(tmp_path):
    path = tmp_path / "doc.eps"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    user_error(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    assert "empty" in user_error(path)


def test_empty_bytes():
    assert "empty" in user_error(b"")


def test_directory(tmp_path):
    assert "directory" in user_error(tmp_path)


def test_missing_file(tmp_path):
    assert "not found" in user_error(tmp_path / "nope.png")
    assert "not found" in user_error(tmp_path / "no_dir" / "nope.png")


def test_permission_denied(tmp_path):
    path = save(noise(), tmp_path / "secret.png")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root (or similar): a mode-000 file is still readable")
        assert "permission denied" in user_error(path)
    finally:
        path.chmod(0o644)


def test_fifo_is_not_opened(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    assert "not a regular file" in user_error(path)


def test_only_user_error_escapes_for_garbage(tmp_path):
    """Fuzz a little: flip bytes all over valid files of several formats."""
    rng = np.random.default_rng(1)
    for suffix in ["png", "jpg", "gif", "webp", "bmp", "tiff"]:
        whole = bytearray(save(noise(32, 24, seed=2), tmp_path / f"ok.{suffix}").read_bytes())
        for _ in range(25):
            data = bytearray(whole)
            for index in rng.integers(0, len(data), size=8):
                data[index] = int(rng.integers(0, 256))
            try:
                load_image_bytes(bytes(data), name=f"fuzz.{suffix}")
            except EdgeEtError as error:
                assert "\n" not in str(error) and f"fuzz.{suffix}" in str(error)


# --- the demo picture -------------------------------------------------------


def test_sample_image(tmp_path):
    path = write_sample_image(tmp_path / "demo" / "sample.png")
    assert path == tmp_path / "demo" / "sample.png"
    rgb = load_image(path).rgb.astype(int)
    red = (rgb[:, :, 1] > 140) & (rgb[:, :, 0] < 80) & (rgb[:, :, 2] < 80)  # the green circle
    blue = (rgb[:, :, 0] > 120) & (rgb[:, :, 1] < 80) & (rgb[:, :, 2] > 150)  # the purple square
    dark = rgb.sum(axis=2) < 150  # the printed word
    # 128 x 128, shapes 34 pixels wide (a generated scene, export.scenes.SAMPLE_SCENE)
    assert red.sum() > 700 and blue.sum() > 700 and dark.sum() > 30  # Pillow < 10.1: tiny font
    assert np.nonzero(red)[1].mean() < np.nonzero(blue)[1].mean()  # circle left of square
    assert rgb[0, 0].min() > 200  # light background


def test_sample_image_is_deterministic(tmp_path):
    first = write_sample_image(tmp_path / "a.png")
    second = write_sample_image(tmp_path / "b.png")
    assert load_image(first).sha256 == load_image(second).sha256


def test_sample_question_matches_description():
    options = dict(line.split(". ", 1) for line in SAMPLE_QUESTION.splitlines()[1:])
    assert sorted(options) == ["A", "B", "C", "D"]
    assert SAMPLE_ANSWER in options
    assert options[SAMPLE_ANSWER] in SAMPLE_DESCRIPTION
    assert "\n" not in SAMPLE_DESCRIPTION
