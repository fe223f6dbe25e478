"""Turn a user's image file into RGB pixels, safely.

Images come from users, so anything can arrive: a photo lying on its side in
EXIF, a 16-bit scan, a transparent logo, an HTML error page saved as `.jpg`, a
truncated download, or a tiny file whose header claims 100000x100000 pixels.
Every such file ends as a one-line `InputError` naming the file and the reason;
every good one ends as a `LoadedImage` holding H x W x 3 uint8 pixels.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from edge_et.core.paths import path_problem, shown
from edge_et.errors import InputError

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image accepted by default: 64 megapixels, about 190 MB of RGB."""

SUPPORTED_FORMATS = (
    "PNG",
    "JPEG",
    "WEBP",
    "GIF",
    "BMP",
    "DIB",
    "TIFF",
    "PPM",
    "TGA",
    "ICO",
    "QOI",
    "AVIF",
    "JPEG2000",
)
"""Pillow formats we agree to decode (JPEG includes MPO). Others, EPS above
all (it runs Ghostscript), are refused as unrecognised."""

# The demo picture is one of the generated scenes the trained perception model knows
# (export.scenes.SAMPLE_SCENE; a test checks that both draw the same pixels), and this is
# that scene's ground-truth caption.
SAMPLE_DESCRIPTION = (
    "A white image with 2 shapes: a large green circle in the middle left and a large purple "
    "square in the middle right. The word EDGE is written in black in the top middle."
)
SAMPLE_QUESTION = "What color is the circle?\nA. blue\nB. green\nC. red\nD. yellow"
SAMPLE_ANSWER = "B"

_WHITE = (255, 255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "PA"})


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded image, upright and in RGB.

    Attributes:
        rgb: H x W x 3 uint8 pixels, C-contiguous and read-only (the hash
            below must keep describing them).
        width: pixels across, after EXIF orientation.
        height: pixels down, after EXIF orientation.
        sha256: hex digest of the shape and the RGB bytes (see `pixel_sha256`);
            equal whenever the decoded pixels are, whatever the file or format,
            so it keys the image-embedding cache. Compare images by it: the
            dataclass itself compares by identity (arrays have no plain ==).
        source: the path (or name) exactly as the caller gave it.
        format: Pillow's name for the file format, e.g. "PNG", "JPEG", "MPO".
        original_mode: Pillow's pixel mode before conversion, e.g. "P", "I;16".
        detail: how closely the perception model looks (runtime/image_detail.py): "high"
            (its own tiling), or "low" (a model with views of its own, LLaVA-OneVision,
            encodes its one global view only).
    """

    rgb: np.ndarray = field(repr=False)
    width: int
    height: int
    sha256: str
    source: str
    format: str
    original_mode: str
    detail: str = "high"

    def to_pil(self) -> Image.Image:
        """Return a new RGB Pillow image with these pixels."""
        # No mode argument: it is deprecated, and H x W x 3 uint8 is RGB anyway.
        return Image.fromarray(self.rgb)

    def to_png_bytes(self) -> bytes:
        """Encode the pixels as PNG (lossless, so reloading gives the same sha256)."""
        buffer = io.BytesIO()
        self.to_pil().save(buffer, format="PNG")
        return buffer.getvalue()


def pixel_sha256(rgb: np.ndarray) -> str:
    """Hash an H x W x 3 uint8 array: the shape is part of the key so that
    the same bytes laid out as 2x6 and 6x2 do not collide."""
    height, width, channels = rgb.shape
    digest = hashlib.sha256(f"{height}x{width}x{channels}\n".encode())
    digest.update(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def load_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode the image file at `path` into an upright RGB `LoadedImage`.

    EXIF orientation is applied, transparency is composited over white, high
    bit depths are scaled to 8 bits and animations give their first frame.
    Images over `max_pixels` are refused from their header, before decoding.

    Raises:
        InputError: one line naming the file, for a missing, unreadable, empty,
            non-image, corrupt, truncated, zero-size or too large file.
    """
    name = os.fsdecode(path)
    with _open_regular_file(path, name) as fp:
        return _decode(fp, name, max_pixels)


def load_image_bytes(
    data: bytes, *, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Decode an image held in memory; like `load_image`, with `name` in messages."""
    if not data:
        raise _fail(name, "no data (empty)")
    return _decode(io.BytesIO(data), name, max_pixels)


def load_pil_image(
    image: Image.Image, *, name: str = "<PIL image>", max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """A Pillow image the caller already holds, made upright RGB as `load_image` does a file."""
    _check_size(image.size, name, max_pixels)
    try:
        rgb = _upright_rgb(image)
    except Exception as error:  # noqa: BLE001 - a lazily decoded image fails here, see _pillow_reason
        raise _fail(name, f"corrupt image data ({type(error).__name__}: {error})") from error
    return _loaded(rgb, name, image.format or "PIL", image.mode)


def load_array(
    pixels: np.ndarray, *, name: str = "<array>", max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """H x W x 3 RGB or H x W gray uint8 pixels, copied (the caller may change its array)."""
    if pixels.dtype != np.uint8 or not (
        pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)
    ):
        raise _fail(
            name,
            f"expected an H x W x 3 (RGB) or H x W (gray) uint8 array, got shape "
            f"{tuple(pixels.shape)} of {pixels.dtype}",
        )
    _check_size((pixels.shape[1], pixels.shape[0]), name, max_pixels)
    rgb = np.repeat(pixels[:, :, np.newaxis], 3, axis=2) if pixels.ndim == 2 else pixels
    return _loaded(
        np.array(rgb, dtype=np.uint8, order="C"), name, "array", "L" if pixels.ndim == 2 else "RGB"
    )


ImageInput = (
    str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray | LoadedImage
)
"""The image forms the public API takes (see `as_loaded_image`)."""


def as_loaded_image(image: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Any image form the public API takes, decoded once (`edge_et.decode_image`).

    Args:
        image: a path (str or os.PathLike), encoded bytes, a PIL image, an RGB/RGBA/gray numpy
            array (uint8), or a `LoadedImage` (returned as it is).
        max_pixels: larger pictures are refused before decoding (a decompression bomb).

    Returns:
        A `LoadedImage`: RGB pixels, size, source and sha256 (the key of the embedding cache).

    Raises:
        InputError: a missing, empty, truncated or non-image file, a picture over `max_pixels`,
            or an unsupported type.
    """
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, max_pixels=max_pixels)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return load_image_bytes(bytes(image), max_pixels=max_pixels)
    if isinstance(image, Image.Image):
        return load_pil_image(image, max_pixels=max_pixels)
    if isinstance(image, np.ndarray):
        return load_array(image, max_pixels=max_pixels)
    raise InputError(
        f"cannot read an image from a {type(image).__name__}: give a path, bytes, "
        "a PIL image or a numpy array"
    )


def _fail(name: str, reason: str) -> InputError:
    return InputError(f"cannot read image '{shown(name)}': {reason}")


def _open_regular_file(path: str | os.PathLike, name: str) -> BinaryIO:
    # stat first: opening a FIFO would block forever, and Windows reports a
    # directory as "permission denied".
    problem = path_problem(path)
    if problem:
        raise _fail(name, problem)
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise _fail(name, "it is a directory, not an image file")
        if not stat.S_ISREG(info.st_mode):
            raise _fail(name, "not a regular file")
        if info.st_size == 0:
            raise _fail(name, "file is empty")
        return open(path, "rb")
    except FileNotFoundError:
        raise _fail(name, "file not found") from None
    except PermissionError:
        raise _fail(name, "permission denied") from None
    except OSError as error:
        raise _fail(name, error.strerror or str(error)) from None


def _decode(fp: BinaryIO, name: str, max_pixels: int) -> LoadedImage:
    with _quiet_pillow() as pillow_log:
        try:
            image = Image.open(fp, formats=_openable_formats())
        except Exception as error:  # noqa: BLE001 - see _pillow_reason
            raise _fail(name, pillow_log.explain(_pillow_reason(error, fp, max_pixels))) from error
        with image:
            _check_size(image.size, name, max_pixels)
            try:
                rgb = _upright_rgb(image)
            except Exception as error:  # noqa: BLE001 - see _pillow_reason
                raise _fail(
                    name, pillow_log.explain(_pillow_reason(error, fp, max_pixels))
                ) from error
            return _loaded(rgb, name, image.format or "unknown", image.mode)


def _loaded(rgb: np.ndarray, name: str, format: str, mode: str) -> LoadedImage:
    rgb.flags.writeable = False
    return LoadedImage(
        rgb=rgb,
        width=rgb.shape[1],
        height=rgb.shape[0],
        sha256=pixel_sha256(rgb),
        source=name,
        format=format,
        original_mode=mode,
    )


class _PillowLog(logging.Handler):
    """What Pillow logs while one image decodes ("More samples per pixel than can be decoded").

    The CLI configures no logging, so such a record would reach the terminal through logging's
    last-resort handler. With this handler on Pillow's logger it does not (an application that
    set up its own logging still gets it), and it can explain a failure in the one-line error.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(" ".join(record.getMessage().split()))

    def explain(self, reason: str) -> str:
        return f"{reason}; Pillow: {self.messages[0][:160]}" if self.messages else reason


@contextmanager
def _quiet_pillow() -> Iterator[_PillowLog]:
    log = _PillowLog()
    pillow = logging.getLogger("PIL")
    pillow.addHandler(log)
    try:
        with warnings.catch_warnings():
            # We check the size ourselves; Pillow's bomb warning and its chatter
            # about bad EXIF or TIFF tags are noise to someone asking about a photo.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", module=r"PIL\.")
            yield log
    finally:
        pillow.removeHandler(log)


def _openable_formats() -> list[str]:
    # Image.open raises KeyError for a format this Pillow build lacks (AVIF, JPEG2000).
    Image.init()
    return [fmt for fmt in SUPPORTED_FORMATS if fmt in Image.OPEN]


def _check_size(size: tuple[int, int], name: str, max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise _fail(name, f"image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise _fail(
            name,
            f"image is {width}x{height} ({width * height / 1e6:.1f} megapixels), over the "
            f"limit of {max_pixels / 1e6:g} megapixels (decompression bomb?)",
        )


def _pillow_reason(error: Exception, fp: BinaryIO, max_pixels: int) -> str:
    """Say in a few words why Pillow gave up on the file.

    Pillow's plugins raise a zoo of types on malformed input (OSError,
    SyntaxError, ValueError, struct.error, EOFError, IndexError, ...), so any
    failure while decoding untrusted bytes is reported as a bad file."""
    message = " ".join(str(error).split())
    if isinstance(error, Image.DecompressionBombError):
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
        return f"image declares over {limit / 1e6:g} megapixels (decompression bomb?)"
    if isinstance(error, UnidentifiedImageError):
        if _looks_like_text(fp):
            return "it contains text, not image data (an error page saved as an image?)"
        return f"not a recognised image file (supported: {', '.join(_openable_formats())})"
    if isinstance(error, MemoryError):
        return "not enough memory to decode it"
    if "truncated" in message.lower() or isinstance(error, EOFError):
        return "file is truncated (corrupt download?)"
    return f"corrupt image data ({type(error).__name__}: {message[:160]})"


def _looks_like_text(fp: BinaryIO) -> bool:
    try:
        fp.seek(0)
        head = fp.read(512)
        head.decode("utf-8")
    except (OSError, ValueError):  # ValueError covers UnicodeDecodeError and a closed file
        return False
    return bool(head) and all(byte >= 0x20 or byte in b"\t\n\r\f" for byte in head)


def _upright_rgb(image: Image.Image) -> np.ndarray:
    # Decode (first frame of an animation) before looking at EXIF, so that a
    # truncated file fails here as a bad file and not inside the transpose.
    image.load()
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001
        # A broken EXIF block should not make an otherwise decodable photo
        # unusable; it is shown as stored.
        upright = image
    return np.ascontiguousarray(_to_rgb(upright), dtype=np.uint8)


def _to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _gray_to_rgb(_high_depth_to_unit(np.asarray(image), mode))
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        # Over white, not black: dropping alpha leaves the colour under fully
        # transparent pixels, usually black, and a logo would vanish into it.
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba)
        return np.asarray(flat.convert("RGB"))
    return np.asarray(image.convert("RGB"))


def _high_depth_to_unit(values: np.ndarray, mode: str) -> np.ndarray:
    """Map 16/32-bit integer or float gray levels to floats in [0, 1].

    Pillow's own convert() clips these to 255, which turns most 16-bit scans
    white. Values are read against the range they evidently use: 16-bit
    files their full 0..65535; I and F images 0..1 (floats), 0..255 or
    0..65535 when they fit, else their own minimum..maximum."""
    values = values.astype(np.float32)
    if mode.startswith("I;16"):
        return values / 65535.0
    finite = values[np.isfinite(values)]
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    if finite.size == 0:
        return np.zeros_like(values)
    low, high = float(finite.min()), float(finite.max())
    if low >= 0 and high <= 1 and mode == "F":
        return values
    for full_scale in (255.0, 65535.0):
        if low >= 0 and high <= full_scale:
            return values / full_scale
    return (values - low) / ((high - low) or 1.0)


def _gray_to_rgb(unit: np.ndarray) -> np.ndarray:
    gray = np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(gray[:, :, np.newaxis], 3, axis=2)


def write_sample_image(path: str | os.PathLike) -> Path:
    """Draw the demo picture described by `SAMPLE_DESCRIPTION` to `path` as PNG.

    Only Pillow is used, so `make demo` needs no download; the drawing is
    deterministic for a given Pillow build. Parent folders are created.
    Returns the path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # 128 x 128, the perception model's tile: a 3 x 3 grid of cells, shapes 34 pixels wide.
    cell, half = 128 / 3, 17
    image = Image.new("RGB", (128, 128), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    x, y = 0.5 * cell, 1.5 * cell
    draw.ellipse((x - half, y - half, x + half, y + half), fill=(30, 160, 50))
    x = 2.5 * cell
    draw.rectangle((x - half, y - half, x + half, y + half), fill=(140, 50, 170))
    _draw_centered_text(draw, "EDGE", center=(1.5 * cell, 0.5 * cell), size=18)
    image.save(target, format="PNG")
    return target


def _draw_centered_text(
    draw: ImageDraw.ImageDraw, text: str, center: tuple[int, int], size: int
) -> None:
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the tiny bitmap font
        font = ImageFont.load_default()
    # textbbox rather than anchor="mm": the bitmap fallback font has no anchors.
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    origin = (center[0] - (left + right) / 2, center[1] - (top + bottom) / 2)
    draw.text(origin, text, fill=(0, 0, 0), font=font)
