"""The varied renderer's truths hold in the picture the model sees (after libmtmd's resize):
each shape's position word, its colour, that it is visible, and that text stays in its cell."""

import random

import numpy as np
import pytest

from export.scenes.forms import example, training_pair
from export.scenes.render import COLORS
from export.scenes.varied import (
    MARGIN,
    MIN_HALF,
    MODEL,
    model_view,
    render_varied,
    sample_varied_scene,
)

SCENES = [sample_varied_scene(random.Random(f"test/{i}")) for i in range(60)]
SHAPE_SCENES = [s for s in SCENES if s["kind"] == "shapes"]


def plain(scene: dict, objects: list, text=None) -> dict:
    """The scene with only `objects` (and `text`), on plain white, without blur or JPEG."""
    return {
        **scene,
        "objects": objects,
        "text": text,
        "background": {"name": "white", "pattern": "plain", "seed": 0},
        "effects": {"blur": 0.0, "jpeg": None},
    }


def ink(scene: dict) -> np.ndarray:
    """Mask of the model-view pixels that are not the white background."""
    view = np.asarray(model_view(render_varied(scene)), dtype=np.int32)
    return np.abs(view - 255).sum(axis=2) > 60, view


def test_scenes_vary_canvas_background_and_style():
    sizes = [(s["canvas"]["width"], s["canvas"]["height"]) for s in SCENES]
    assert min(min(size) for size in sizes) >= 64 and max(max(size) for size in sizes) <= 1024
    assert any(w / h > 1.4 for w, h in sizes) and any(h / w > 1.4 for w, h in sizes)
    assert len({s["background"]["pattern"] for s in SCENES}) >= 4
    objects = [o for s in SHAPE_SCENES for o in s["objects"]]
    assert any(o["outline"] for o in objects) and any(not o["outline"] for o in objects)
    assert len({s["effects"]["jpeg"] is not None for s in SCENES}) == 2


def test_the_same_seed_draws_the_same_pixels():
    again = sample_varied_scene(random.Random("test/3"))
    assert again == SCENES[3]
    assert np.array_equal(np.asarray(render_varied(again)), np.asarray(render_varied(SCENES[3])))


@pytest.mark.parametrize("scene", SHAPE_SCENES[:15])
def test_each_shape_sits_in_its_named_cell_with_its_colour_after_the_resize(scene):
    for obj in scene["objects"]:
        mask, view = ink(plain(scene, [obj]))
        ys, xs = np.nonzero(mask)
        assert len(xs) > 0, obj
        assert (
            xs.max() - xs.min() + 1 >= 2 * MIN_HALF - 1
            and ys.max() - ys.min() + 1 >= 2 * MIN_HALF - 1
        )
        # the centre the scene records, in model pixels, is MARGIN inside its cell
        cx, cy = obj["x"] * MODEL, obj["y"] * MODEL
        assert int(cx // (MODEL / 3)) == obj["col"] and int(cy // (MODEL / 3)) == obj["row"]
        for centre in (cx, cy):
            assert min(abs(centre - line * MODEL / 3) for line in (1, 2)) >= MARGIN * MODEL - 0.5
        # and the drawn pixels are centred there (outlines and stars included)
        assert abs((xs.min() + xs.max()) / 2 - cx) < max(3, 0.35 * (xs.max() - xs.min()))
        assert abs((ys.min() + ys.max()) / 2 - cy) < max(3, 0.35 * (ys.max() - ys.min()))
        colour = np.median(view[mask], axis=0)
        nearest = min(COLORS, key=lambda name: np.abs(np.array(COLORS[name]) - colour).sum())
        assert nearest == obj["color"], (obj, colour)


@pytest.mark.parametrize("scene", SHAPE_SCENES[:15])
def test_every_shape_stays_visible_among_the_others(scene):
    whole, _ = ink(plain(scene, scene["objects"]))
    for i, obj in enumerate(scene["objects"]):
        alone, _ = ink(plain(scene, [obj]))
        without, _ = ink(plain(scene, scene["objects"][:i] + scene["objects"][i + 1 :]))
        shown = alone & whole & ~without  # pixels only this shape inks
        assert shown.sum() >= 0.3 * alone.sum(), obj


def test_text_stays_inside_its_cell():
    for scene in [s for s in SHAPE_SCENES if s.get("text")][:15]:
        text = scene["text"]
        mask, _ = ink(plain(scene, [], text))
        ys, xs = np.nonzero(mask)
        third = MODEL / 3
        assert text["col"] * third - 2 <= xs.min() and xs.max() <= (text["col"] + 1) * third + 2
        assert text["row"] * third - 2 <= ys.min() and ys.max() <= (text["row"] + 1) * third + 2


def test_the_caption_names_the_background_and_the_varied_stream_is_its_own():
    ex = example(0, 7, "varied")
    background = ex.scene["background"]["name"]
    assert (
        training_pair(ex, "caption")[1].lower().startswith(f"a {background} image".lower())
        or ex.scene["kind"] == "chart"
    )
    assert ex.id.startswith("v0-") and example(0, 7).id.startswith("s0-")
    assert example(0, 7, "mix").id.startswith("v0-") and example(0, 8, "mix").id.startswith("s0-")
