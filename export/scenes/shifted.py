"""The style-shifted held-out scenes: the same kinds of ground truth, drawn by matplotlib.

No training stream uses this module (export.scenes.forms keeps "shifted" out of the streams
`export train` accepts), so scores on it say how a perception model does on pictures drawn by
a program other than its training renderers. Differences from render.py and varied.py, on
purpose: matplotlib's markers (its star, triangle and diamond have other proportions), the
"tab:" palette and named light backgrounds, fonts no training renderer uses (STIX, Computer
Modern sans and roman), antialiasing by Agg, and matplotlib's own
bar charts with `bar_label` values.

Truths follow varied.py's rules: shape centres lie MARGIN inside their third of the frame
(position words survive the model's stretch to 128 pixels), sizes are chosen in model pixels
(small 3-9, large 12-20 half-widths), text stays inside its cell.
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image

from export.scenes.render import CHART_KIND_SHARE, COLORS, SHAPES, TEXT_SHARE, WORDS
from export.scenes.varied import LARGE_HALF, MARGIN, MODEL, MORE_WORDS, SMALL_HALF

SHIFTED_SEED = 2  # a stream of its own: train is 0, held-out 1
MARKERS = {"circle": "o", "square": "s", "triangle": "^", "star": "*", "diamond": "D"}
# Matplotlib's "tab:" colours (and gold), not the training palette, under the same names.
PALETTE = {
    "red": "tab:red",
    "green": "tab:green",
    "blue": "tab:blue",
    "yellow": "gold",
    "purple": "tab:purple",
    "orange": "tab:orange",
}
FACES = ("white", "whitesmoke", "ivory", "aliceblue", "honeydew", "lavenderblush", "linen")
FONTS = ("STIXGeneral", "cmss10", "cmr10")
DPI = 100


def sample_shifted_scene(rng: random.Random) -> dict:
    """A scene in render.py's format plus `figure` (pixels, face, font): drawn by matplotlib."""
    width = rng.randint(160, 900)
    height = min(900, max(160, round(width * rng.uniform(2 / 3, 3 / 2))))  # aspect within 2:3-3:2
    figure = {
        "width": width,
        "height": height,
        "face": rng.choice(FACES),
        "font": rng.choice(FONTS),
    }
    if rng.random() < CHART_KIND_SHARE:
        n_bars = rng.randint(3, 4)
        colors = rng.sample(sorted(COLORS), n_bars)
        values = rng.sample(range(1, 10), n_bars)
        return {
            "kind": "chart",
            "bars": [{"color": c, "value": v} for c, v in zip(colors, values)],
            "figure": figure,
        }
    cells = rng.sample([(r, c) for r in range(3) for c in range(3)], 6)
    n_objects = rng.randint(1, 5)
    objects: list[dict] = []
    for row, col in sorted(cells[:n_objects]):
        objects.append(_apart(rng, row, col, objects, width, height))
    text = None
    if rng.random() < TEXT_SHARE:
        row, col = cells[n_objects]
        value = rng.choice(WORDS + MORE_WORDS) if rng.random() < 0.6 else str(rng.randint(1, 999))
        text = {"value": value, "row": row, "col": col}
    return {"kind": "shapes", "objects": objects, "text": text, "figure": figure}


def _apart(
    rng: random.Random, row: int, col: int, placed: list[dict], width: int, height: int
) -> dict:
    """A shape in cell (row, col) that does not overlap `placed` (this set tests counting, not
    occlusion): up to 20 draws of its centre, then it becomes small."""
    size = rng.choice(("large", "small"))
    stretch = math.sqrt(max(width, height) / min(width, height))
    shape, colour, hollow = rng.choice(SHAPES), rng.choice(sorted(COLORS)), rng.random() < 0.25
    for attempt in range(21):
        if attempt == 20:
            size = "small"
        low, high = SMALL_HALF if size == "small" else LARGE_HALF
        model_half = rng.uniform(max(low, 3.0 * stretch), max(low, 3.0 * stretch, high))
        half = model_half * math.sqrt(width * height) / MODEL
        x, y = _in_third(rng, col, half / width), _in_third(rng, row, half / height)
        if all(
            math.hypot((x - o["x"]) * width, (y - o["y"]) * height) > 1.3 * (half + o["half"])
            for o in placed
        ):
            break
    return {
        "shape": shape,
        "color": colour,
        "size": size,
        "row": row,
        "col": col,
        "x": round(x, 4),
        "y": round(y, 4),
        "half": round(half, 2),
        "hollow": hollow,
    }


def _in_third(rng: random.Random, cell: int, half: float) -> float:
    """A centre MARGIN inside third `cell`, and the shape inside the frame when it fits."""
    low, high = cell / 3 + MARGIN, (cell + 1) / 3 - MARGIN
    if max(low, half) <= min(high, 1 - half):
        low, high = max(low, half), min(high, 1 - half)
    return rng.uniform(low, high)


def render_shifted(scene: dict) -> Image.Image:
    """The scene drawn by matplotlib (Agg), at its figure's pixel size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    spec = scene["figure"]
    width, height = spec["width"], spec["height"]
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=spec["face"])
    canvas = FigureCanvasAgg(figure)
    if scene["kind"] == "chart":
        _chart(figure, scene["bars"], spec)
    else:
        axes = figure.add_axes((0, 0, 1, 1))
        axes.set_xlim(0, width)
        axes.set_ylim(height, 0)  # y down, as the scene's fractions are
        axes.set_axis_off()
        axes.set_facecolor(spec["face"])
        for obj in scene["objects"]:
            _marker(axes, obj, width, height)
        if scene.get("text"):
            _text(axes, scene["text"], spec, width, height)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


def _marker(axes, obj: dict, width: int, height: int) -> None:
    points = 2 * obj["half"] * 72 / DPI  # the marker's nominal diameter, in points
    colour = PALETTE[obj["color"]]
    axes.plot(
        [obj["x"] * width],
        [obj["y"] * height],
        marker=MARKERS[obj["shape"]],
        markersize=points,
        markerfacecolor="none" if obj["hollow"] else colour,
        markeredgecolor=colour,
        markeredgewidth=_edge_points(width, height) if obj["hollow"] else 0.5,
        linestyle="none",
    )


def _edge_points(width: int, height: int) -> float:
    """An outline 1.8 model pixels wide after the stretch to 128 (thinner ones fade to a tint)."""
    return 1.8 * max(width, height) / MODEL * 72 / DPI


def _text(axes, text: dict, spec: dict, width: int, height: int) -> None:
    cell_w, cell_h = width / 3, height / 3
    size_px = min(cell_h * 0.4, cell_w * 0.9 / max(2, len(text["value"])) * 1.6)
    axes.text(
        (text["col"] + 0.5) * cell_w,
        (text["row"] + 0.5) * cell_h,
        text["value"],
        ha="center",
        va="center",
        fontsize=size_px * 72 / DPI,
        family=spec["font"],
        color="black",
    )


def _chart(figure, bars: list[dict], spec: dict) -> None:
    axes = figure.add_axes((0.08, 0.08, 0.88, 0.8))
    axes.set_facecolor(spec["face"])
    drawn = axes.bar(
        range(len(bars)), [b["value"] for b in bars], color=[PALETTE[b["color"]] for b in bars]
    )
    axes.bar_label(drawn, fontsize=max(6, spec["height"] * 0.06 * 72 / DPI), family=spec["font"])
    axes.set_ylim(0, 10.5)
    axes.set_xticks([])
    axes.set_yticks([])
    for side in ("top", "right", "left"):
        axes.spines[side].set_visible(False)
