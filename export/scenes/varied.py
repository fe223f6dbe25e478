"""The second training renderer: the same ground truth, drawn with what render.py holds fixed varied.

render.py draws every scene at 128 x 128 on white, filled shapes on a 3 x 3 grid, one font.
A perception model trained only on that fails on any other picture. Here a scene also gets:
- a canvas of 64-1024 pixels a side, aspect ratio 1:2 to 2:1;
- shapes from a few model pixels to most of the frame (a single shape), at free positions
  inside their cell, rotated, filled or outlined, in shades of their colour, overlapping
  their neighbours;
- a light background, plain or as a gradient, noise, stripes or checks, named in the caption;
- text in several fonts and sizes, from a longer list of words and numbers up to 999;
- blur and JPEG artefacts.

Truths that must survive the model's own resize. libmtmd resizes an Idefics3 picture to the
128-pixel tile by stretching both sides (edge_et.formats.idefics3, "mtmd"), so a point keeps
its fractions of width and height: the position word is the cell of the shape's centre, and
centres keep MARGIN of the frame away from the thirds lines, so blur and resampling never
move a shape across one. Sizes are chosen in the model's pixels: the smallest shape is still
MIN_HALF model pixels across each way after the stretch, small and large shapes are separated
by a gap, and an outline is at least 1.5 model pixels wide. `model_view` is the 128-pixel
picture the model sees, computed with the runtime's own resize.
"""

from __future__ import annotations

import io
import math
import random
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from edge_et.formats.idefics3 import Layout, make_views
from export.scenes.render import (
    CHART_KIND_SHARE,
    COLORS,
    IMAGE_SIZE,
    SHAPES,
    TEXT_SHARE,
    WORDS,
)

MODEL = IMAGE_SIZE  # the tile the micro model sees
MARGIN = 0.05  # of the frame, between a centre and a thirds line
MIN_HALF = 3.0  # model pixels: the smallest half-width, each way
SMALL_HALF = (MIN_HALF, 9.0)  # model pixels, geometric mean of the two ways
LARGE_HALF = (12.0, 20.0)  # a shape among others stays about inside its cell
ALONE_HALF = (12.0, 54.0)  # a single shape may fill most of the frame
# Light backgrounds keep black text and every shape colour visible; the name goes in the caption.
BACKGROUNDS = {
    "white": (255, 255, 255),
    "light grey": (214, 214, 214),
    "beige": (240, 230, 200),
    "light blue": (212, 226, 246),
    "light green": (214, 240, 214),
    "light pink": (246, 222, 228),
}
PATTERNS = ("plain", "gradient", "noise", "stripes", "checks")
# Rotation a shape may take without looking like another kind (a square at 45 degrees is a diamond).
MAX_TURN = {"circle": 0, "square": 15, "diamond": 15, "triangle": 30, "star": 180}
MORE_WORDS = (
    "TREE",
    "BOAT",
    "RAIN",
    "SNOW",
    "KITE",
    "BELL",
    "DUCK",
    "FROG",
    "LION",
    "ROSE",
    "MILK",
    "BOOK",
    "DOOR",
    "RING",
    "SHIP",
    "WIND",
    "TAXI",
    "JAZZ",
    "QUIZ",
    "VAN",
)
# Fonts matplotlib ships (the `bench` and `export` extras install it), so every machine draws the
# same glyphs; None is Pillow's own. The style-shifted set uses none of these (export/scenes/shifted.py).
FONT_FILES = (
    None,
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSerif-Italic.ttf",
)


def sample_varied_scene(rng: random.Random) -> dict:
    """A scene in render.py's format plus `canvas`, `background`, `effects` and free geometry."""
    width, height = _canvas(rng)
    scene = {
        "canvas": {"width": width, "height": height},
        "background": _background(rng),
        "effects": {
            "blur": round(rng.uniform(0.3, 1.2), 2) if rng.random() < 0.3 else 0.0,
            "jpeg": rng.randint(15, 90) if rng.random() < 0.4 else None,
        },
    }
    if rng.random() < CHART_KIND_SHARE:
        n_bars = rng.randint(3, 4)
        colors = rng.sample(sorted(COLORS), n_bars)
        values = rng.sample(range(1, 10), n_bars)
        return {
            "kind": "chart",
            "bars": [{"color": c, "value": v} for c, v in zip(colors, values)],
            "font": rng.randrange(len(FONT_FILES)),
            **scene,
        }
    cells = rng.sample([(r, c) for r in range(3) for c in range(3)], 6)
    n_objects = rng.randint(1, 5)
    objects = [
        _shape(rng, row, col, alone=n_objects == 1, width=width, height=height)
        for row, col in sorted(cells[:n_objects])
    ]
    text = None
    if rng.random() < TEXT_SHARE:
        text = _text(rng, *cells[n_objects])
    return {"kind": "shapes", "objects": objects, "text": text, **scene}


def _canvas(rng: random.Random) -> tuple[int, int]:
    side = math.exp(rng.uniform(math.log(64), math.log(1024)))
    aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    width, height = side * math.sqrt(aspect), side / math.sqrt(aspect)
    return int(min(1024, max(64, width))), int(min(1024, max(64, height)))


def _background(rng: random.Random) -> dict:
    name = rng.choice(sorted(BACKGROUNDS)) if rng.random() < 0.7 else "white"
    return {"name": name, "pattern": rng.choice(PATTERNS), "seed": rng.randrange(1 << 30)}


def _shape(rng: random.Random, row: int, col: int, *, alone: bool, width: int, height: int) -> dict:
    """A shape drawn round in the picture (an ellipse once the model's resize stretches it).

    `half` is its radius in picture pixels; in the model's pixels it is half * 128 / width
    across and half * 128 / height down, and their geometric mean falls in the size's range.
    """
    size = rng.choice(("large", "small"))
    low, high = SMALL_HALF if size == "small" else ALONE_HALF if alone else LARGE_HALF
    stretch = math.sqrt(max(width, height) / min(width, height))
    low = max(low, MIN_HALF * stretch)  # the narrow way keeps MIN_HALF model pixels
    model_half = rng.uniform(low, max(low, high))
    half = model_half * math.sqrt(width * height) / MODEL
    x, y = _free_centre(rng, col, half / width), _free_centre(rng, row, half / height)
    shape = rng.choice(SHAPES)
    return {
        "shape": shape,
        "color": rng.choice(sorted(COLORS)),
        "size": size,
        "row": row,
        "col": col,
        "x": round(x, 4),
        "y": round(y, 4),
        "half": round(half, 2),
        "turn": round(rng.uniform(-MAX_TURN[shape], MAX_TURN[shape]), 1),
        "outline": rng.random() < 0.3,
        "shade": round(rng.uniform(0.85, 1.1), 3),
    }


def _free_centre(rng: random.Random, cell: int, half: float) -> float:
    """A centre inside third `cell`, MARGIN from its lines, the shape inside the frame if it can be."""
    low, high = cell / 3 + MARGIN, (cell + 1) / 3 - MARGIN
    inside_low, inside_high = max(low, half), min(high, 1 - half)
    if inside_low <= inside_high:
        low, high = inside_low, inside_high
    return rng.uniform(low, high)


def _text(rng: random.Random, row: int, col: int) -> dict:
    value = rng.choice(WORDS + MORE_WORDS) if rng.random() < 0.6 else str(rng.randint(1, 999))
    return {
        "value": value,
        "row": row,
        "col": col,
        "x": round(_free_centre(rng, col, 0.12), 4),
        "y": round(_free_centre(rng, row, 0.06), 4),
        "font": rng.randrange(len(FONT_FILES)),
        "height": round(rng.uniform(10, 20) / MODEL, 4),
    }


# -- drawing ------------------------------------------------------------------------------


def render_varied(scene: dict) -> Image.Image:
    """The scene at its canvas size, effects applied; deterministic for a Pillow build."""
    width, height = scene["canvas"]["width"], scene["canvas"]["height"]
    image = _background_image(scene["background"], width, height)
    draw = ImageDraw.Draw(image)
    if scene["kind"] == "chart":
        _draw_chart(draw, scene, width, height)
    else:
        for obj in scene["objects"]:
            _draw_object(draw, obj, width, height)
        if scene.get("text"):
            _draw_text(draw, scene["text"], width, height)
    return _effects(image, scene["effects"], width, height)


def model_view(image: Image.Image) -> Image.Image:
    """The 128-pixel picture the micro model sees: libmtmd's resize, as the runtime computes it."""
    layout = Layout(tile=MODEL, longest_edge=MODEL, tokens=16, mode="mtmd")
    return Image.fromarray(make_views(np.asarray(image.convert("RGB")), layout)[-1])


def _background_image(background: dict, width: int, height: int) -> Image.Image:
    base = np.array(BACKGROUNDS[background["name"]], dtype=np.float32)
    rng = np.random.default_rng(background["seed"])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    pattern = background["pattern"]
    if pattern == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        ramp = np.cos(angle) * xs / width + np.sin(angle) * ys / height
        shift = (ramp - ramp.mean())[..., None] * 40
    elif pattern == "noise":
        shift = rng.normal(0, 10, (height, width, 1))
    elif pattern in ("stripes", "checks"):
        period = max(4.0, rng.uniform(0.04, 0.12) * max(width, height))
        stripes = (
            np.floor(xs / period)
            if pattern == "stripes"
            else np.floor(xs / period) + np.floor(ys / period)
        )
        shift = ((stripes % 2) * 2 - 1)[..., None] * 9
    else:
        shift = np.zeros((height, width, 1), dtype=np.float32)
    pixels = np.clip(base + shift, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(pixels, (height, width, 3))))


def _draw_object(draw: ImageDraw.ImageDraw, obj: dict, width: int, height: int) -> None:
    fill = tuple(int(min(255, channel * obj["shade"])) for channel in COLORS[obj["color"]])
    points = _outline(obj["shape"], obj["x"] * width, obj["y"] * height, obj["half"], obj["turn"])
    if not obj["outline"]:
        draw.polygon(points, fill=fill)
        return
    line = max(1, round(1.5 * max(width, height) / MODEL), round(0.25 * obj["half"]))
    draw.line(points + points[:1], fill=fill, width=line, joint="curve")


def _outline(shape: str, x: float, y: float, half: float, turn: float) -> list[tuple[float, float]]:
    """The shape as a polygon: unit corners, turned, scaled by `half` around (x, y)."""
    if shape == "circle":
        unit = [(math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * math.pi, 48, endpoint=False)]
    elif shape == "square":
        unit = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    elif shape == "diamond":
        unit = [(0, -1), (1, 0), (0, 1), (-1, 0)]
    elif shape == "triangle":
        unit = [(0, -1), (1, 1), (-1, 1)]
    elif shape == "star":
        unit = [
            (
                (1 if i % 2 == 0 else 0.45) * math.cos(-math.pi / 2 + i * math.pi / 5),
                (1 if i % 2 == 0 else 0.45) * math.sin(-math.pi / 2 + i * math.pi / 5),
            )
            for i in range(10)
        ]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    cos, sin = math.cos(math.radians(turn)), math.sin(math.radians(turn))
    return [(x + (u * cos - v * sin) * half, y + (u * sin + v * cos) * half) for u, v in unit]


@lru_cache(maxsize=64)
def font_at(index: int, pixels: int) -> ImageFont.ImageFont:
    """Font FONT_FILES[index] at `pixels` size (matplotlib's copy of the file)."""
    name = FONT_FILES[index]
    if name is None:
        return ImageFont.load_default(size=pixels)
    import matplotlib

    return ImageFont.truetype(
        str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), pixels
    )


def _draw_text(draw: ImageDraw.ImageDraw, text: dict, width: int, height: int) -> None:
    ink = (20, 20, 20)
    size = max(6, round(text["height"] * height))
    face = font_at(text["font"], size)
    left, top, right, bottom = draw.textbbox((0, 0), text["value"], font=face)
    limit = (1 / 3 - 2 * MARGIN) * width  # the word stays inside its own cell
    if right - left > limit:
        face = font_at(text["font"], max(6, int(size * limit / (right - left))))
        left, top, right, bottom = draw.textbbox((0, 0), text["value"], font=face)
    # The word's box, moved (not resized) to lie inside its cell, MARGIN from the thirds lines.
    x = _within(text["x"] * width, (right - left) / 2, text["col"], width)
    y = _within(text["y"] * height, (bottom - top) / 2, text["row"], height)
    draw.text((x - (left + right) / 2, y - (top + bottom) / 2), text["value"], fill=ink, font=face)


def _within(centre: float, half: float, cell: int, side: int) -> float:
    low, high = (cell / 3 + MARGIN) * side + half, ((cell + 1) / 3 - MARGIN) * side - half
    return min(max(centre, low), high) if low <= high else (low + high) / 2


def _draw_chart(draw: ImageDraw.ImageDraw, scene: dict, width: int, height: int) -> None:
    base, top = height * 0.92, height * 0.2
    slot = width * 0.88 / len(scene["bars"])
    draw.line((width * 0.05, base, width * 0.95, base), fill=(0, 0, 0), width=max(1, height // 128))
    face = font_at(scene["font"], max(6, round(height * 0.1)))
    for i, bar in enumerate(scene["bars"]):
        x0, x1 = width * 0.06 + (i + 0.2) * slot, width * 0.06 + (i + 0.8) * slot
        bar_top = base - (base - top) * bar["value"] / 9
        draw.rectangle((x0, bar_top, x1, base - 1), fill=COLORS[bar["color"]])
        label = str(bar["value"])
        left, _, right, lower = draw.textbbox((0, 0), label, font=face)
        draw.text(
            ((x0 + x1 - left - right) / 2, bar_top - height * 0.03 - lower),
            label,
            fill=(0, 0, 0),
            font=face,
        )


def _effects(image: Image.Image, effects: dict, width: int, height: int) -> Image.Image:
    if effects["blur"]:
        image = image.filter(ImageFilter.GaussianBlur(effects["blur"] * max(width, height) / MODEL))
    if effects["jpeg"]:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=effects["jpeg"])
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image
