"""Scenes: sampling a seeded ground truth, and drawing it with Pillow.

A scene is a plain JSON-able dict, the ground truth every question, answer and training
target is computed from:

    {"kind": "shapes", "objects": [{"shape": "circle", "color": "red", "size": "large",
                                    "row": 1, "col": 0}, ...],
     "text": {"value": "EDGE", "row": 0, "col": 1} or None}
    {"kind": "chart", "bars": [{"color": "red", "value": 5}, ...]}

Shapes scenes put 1-5 shapes (and at most one printed word or number) on a 3 x 3 grid of
cells; charts are 3-4 coloured bars with their value printed above each. Images are
IMAGE_SIZE pixels square, the micro perception model's tile size, so libmtmd sends them to
the model unresized (docs/pitfalls.md, 3). Pure numpy + Pillow: no torch.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

IMAGE_SIZE = 128
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)

SHAPES = ("circle", "square", "triangle", "star", "diamond")
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 60, 210),
    "yellow": (235, 200, 20),
    "purple": (140, 50, 170),
    "orange": (245, 130, 20),
}
SIZES = {"small": 9, "large": 17}  # half-widths in pixels; a cell is ~42 pixels
# Short printed words (capitals, no colour or shape names, so text never reads as an object).
WORDS = (
    "CAT",
    "DOG",
    "SUN",
    "BOX",
    "MAP",
    "CUP",
    "HAT",
    "KEY",
    "BUS",
    "PEN",
    "TOP",
    "ZIP",
    "EDGE",
    "BIRD",
    "FISH",
    "MOON",
    "STOP",
    "OPEN",
    "GOLD",
    "LAMP",
)
ROWS = ("top", "middle", "bottom")
COLS = ("left", "middle", "right")
FONT_SIZE = 18
CHART_FONT_SIZE = 14
CHART_KIND_SHARE = 0.25
TEXT_SHARE = 0.5


def position_name(row: int, col: int) -> str:
    """'top left', 'top middle', ..., 'center' for the middle cell."""
    if (row, col) == (1, 1):
        return "center"
    return f"{ROWS[row]} {COLS[col]}"


POSITIONS = tuple(position_name(r, c) for r in range(3) for c in range(3))

# The demo's picture (edge_et.core.images.write_sample_image draws the same pixels; a test checks).
SAMPLE_SCENE = {
    "kind": "shapes",
    "text": {"value": "EDGE", "row": 0, "col": 1},
    "objects": [
        {"shape": "circle", "color": "green", "size": "large", "row": 1, "col": 0},
        {"shape": "square", "color": "purple", "size": "large", "row": 1, "col": 2},
    ],
}


def sample_scene(rng: random.Random) -> dict:
    """A random scene from `rng` (the only source of randomness: same state, same scene)."""
    if rng.random() < CHART_KIND_SHARE:
        return _sample_chart(rng)
    return _sample_shapes(rng)


def _sample_shapes(rng: random.Random) -> dict:
    cells = rng.sample([(r, c) for r in range(3) for c in range(3)], 6)
    n_objects = rng.randint(1, 5)
    objects = []
    for row, col in sorted(cells[:n_objects]):
        objects.append(
            {
                "shape": rng.choice(SHAPES),
                "color": rng.choice(sorted(COLORS)),
                "size": rng.choice(sorted(SIZES)),
                "row": row,
                "col": col,
            }
        )
    text = None
    if rng.random() < TEXT_SHARE:
        row, col = cells[n_objects]
        value = rng.choice(WORDS) if rng.random() < 0.6 else str(rng.randint(1, 99))
        text = {"value": value, "row": row, "col": col}
    return {"kind": "shapes", "objects": objects, "text": text}


def _sample_chart(rng: random.Random) -> dict:
    n_bars = rng.randint(3, 4)
    colors = rng.sample(sorted(COLORS), n_bars)
    values = rng.sample(range(1, 10), n_bars)  # distinct: "the tallest bar" is always one bar
    return {"kind": "chart", "bars": [{"color": c, "value": v} for c, v in zip(colors, values)]}


def render(scene: dict) -> Image.Image:
    """The scene as an IMAGE_SIZE x IMAGE_SIZE RGB image; deterministic for a Pillow build."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    if scene["kind"] == "chart":
        _draw_chart(draw, scene["bars"])
        return image
    for obj in scene["objects"]:
        draw_shape(
            draw,
            obj["shape"],
            COLORS[obj["color"]],
            cell_center(obj["row"], obj["col"]),
            SIZES[obj["size"]],
        )
    if scene.get("text"):
        text = scene["text"]
        draw_text(draw, text["value"], cell_center(text["row"], text["col"]), FONT_SIZE)
    return image


def cell_center(row: int, col: int) -> tuple[float, float]:
    """Pixel centre of grid cell (row, col)."""
    cell = IMAGE_SIZE / 3
    return ((col + 0.5) * cell, (row + 0.5) * cell)


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    fill: tuple[int, int, int],
    center: tuple[float, float],
    half: int,
) -> None:
    """One filled shape of half-width `half` around `center`."""
    x, y = center
    if shape == "circle":
        draw.ellipse((x - half, y - half, x + half, y + half), fill=fill)
    elif shape == "square":
        draw.rectangle((x - half, y - half, x + half, y + half), fill=fill)
    elif shape == "triangle":
        draw.polygon([(x, y - half), (x + half, y + half), (x - half, y + half)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(x, y - half), (x + half, y), (x, y + half), (x - half, y)], fill=fill)
    elif shape == "star":
        points = []
        for i in range(10):
            radius = half if i % 2 == 0 else half * 0.45
            angle = -math.pi / 2 + i * math.pi / 5
            points.append((x + radius * math.cos(angle), y + radius * math.sin(angle)))
        draw.polygon(points, fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled font at `size` (the bitmap fallback on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def draw_text(draw: ImageDraw.ImageDraw, text: str, center: tuple[float, float], size: int) -> None:
    """`text` in black, centred on `center` (textbbox: the bitmap font has no anchors)."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font(size))
    draw.text(
        (center[0] - (left + right) / 2, center[1] - (top + bottom) / 2),
        text,
        fill=INK,
        font=font(size),
    )


def _draw_chart(draw: ImageDraw.ImageDraw, bars: list[dict]) -> None:
    base, top = IMAGE_SIZE - 10, 26  # value 9 reaches `top`; its label sits above it
    slot = (IMAGE_SIZE - 16) / len(bars)
    draw.line((6, base, IMAGE_SIZE - 6, base), fill=INK, width=1)
    for i, bar in enumerate(bars):
        x0 = 8 + i * slot + slot * 0.2
        x1 = 8 + (i + 1) * slot - slot * 0.2
        height = (base - top) * bar["value"] / 9
        draw.rectangle((x0, base - height, x1, base - 1), fill=COLORS[bar["color"]])
        draw_text(draw, str(bar["value"]), ((x0 + x1) / 2, base - height - 10), CHART_FONT_SIZE)
