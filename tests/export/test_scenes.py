"""The scene generator: determinism, answers checked against the scene and the pixels, the eval
JSONL format, and the three training forms built from the runtime's own prompts."""

import json
import re

import numpy as np
import pytest

from edge_et.core import prompts
from edge_et.core.hints import hint_from_question
from edge_et.core.images import (
    SAMPLE_ANSWER,
    SAMPLE_DESCRIPTION,
    SAMPLE_QUESTION,
    load_image,
    write_sample_image,
)
from export.scenes import (
    CATEGORIES,
    FORMS,
    describe,
    example,
    format_question,
    render,
    training_pair,
    write_split,
)
from export.scenes.facts import extraction_facts
from export.scenes.forms import HELDOUT_SEED, TRAIN_SEED
from export.scenes.render import (
    COLORS,
    IMAGE_SIZE,
    POSITIONS,
    SAMPLE_SCENE,
    cell_center,
    position_name,
)

N = 400


def test_examples_are_deterministic_and_splits_differ():
    for index in (0, 7, 123):
        a, b = example(TRAIN_SEED, index), example(TRAIN_SEED, index)
        assert a == b
        assert np.array_equal(np.asarray(a.image()), np.asarray(b.image()))
    train = [example(TRAIN_SEED, i).scene for i in range(50)]
    heldout = [example(HELDOUT_SEED, i).scene for i in range(50)]
    assert sum(s in train for s in heldout) <= 2  # tiny scenes may coincide, streams do not


def test_every_category_occurs_and_letters_are_balanced():
    exs = [example(TRAIN_SEED, i) for i in range(N)]
    assert {ex.question.category for ex in exs} == set(CATEGORIES)
    letters = [ex.question.answer for ex in exs]
    assert all(N / 4 * 0.7 < letters.count(letter) < N / 4 * 1.3 for letter in "ABCD")
    for ex in exs:
        assert sorted(ex.question.options) == list("ABCD")
        assert len(set(ex.question.options.values())) == 4


def _objects_named(scene, phrase):
    color, shape = phrase.removeprefix("the ").split(" ")
    return [o for o in scene["objects"] if o["color"] == color and o["shape"] == shape]


def _check_answer(ex) -> None:
    """An independent reading of each question against the ground-truth scene."""
    scene, q = ex.scene, ex.question
    answer, stem = q.options[q.answer], q.question
    if scene["kind"] == "chart":
        bars = scene["bars"]
        values = {b["color"]: b["value"] for b in bars}
        if stem.startswith("How many bars"):
            assert int(answer) == len(bars)
        elif m := re.match(r"What number is written above the (\w+) bar", stem):
            assert int(answer) == values[m[1]]
        elif "tallest" in stem or "shortest" in stem:
            pick = max if "tallest" in stem else min
            assert answer == pick(bars, key=lambda b: b["value"])["color"]
        elif m := re.match(r"Which bar is directly to the right of the (\w+) bar", stem):
            colors = [b["color"] for b in bars]
            assert colors.index(answer) == colors.index(m[1]) + 1
        elif stem.startswith("What color is the"):
            where = re.match(r"What color is the (.+) bar\?", stem)[1]
            index = {
                "leftmost": 0,
                "rightmost": len(bars) - 1,
                "second from the left": 1,
                "third from the left": 2,
            }[where]
            assert answer == bars[index]["color"]
        else:
            assert q.category == "existence" and answer in values
            assert not any(o in values for k, o in q.options.items() if k != q.answer)
        return
    objects = scene["objects"]
    if stem.startswith("How many shapes are there"):
        assert int(answer) == len(objects)
    elif m := re.match(r"How many (\w+) shapes are there", stem):
        assert int(answer) == sum(o["color"] == m[1] for o in objects)
    elif m := re.match(r"How many (\w+)s are there", stem):
        assert int(answer) == sum(o["shape"] == m[1] for o in objects)
    elif m := re.match(r"What color is the (\w+)\?", stem):
        (obj,) = [o for o in objects if o["shape"] == m[1]]
        assert answer == obj["color"]
    elif m := re.match(r"Where is the (\w+ \w+) in the image", stem):
        (obj,) = _objects_named(scene, m[1])
        assert answer == position_name(obj["row"], obj["col"])
    elif m := re.match(
        r"What shape is (to the left of|to the right of|above|below) the (\w+ \w+)\?", stem
    ):
        (ref,) = _objects_named(scene, m[2])
        dr, dc = {
            "to the left of": (0, -1),
            "to the right of": (0, 1),
            "above": (-1, 0),
            "below": (1, 0),
        }[m[1]]
        hits = [
            o
            for o in objects
            if o is not ref
            and (o["row"] - ref["row"]) * (1 - abs(dr)) == 0
            and (o["col"] - ref["col"]) * (1 - abs(dc)) == 0
            and ((o["col"] - ref["col"]) * dc > 0 or (o["row"] - ref["row"]) * dr > 0)
        ]
        assert [o["shape"] for o in hits] == [answer]
    elif stem.startswith("What word") or stem.startswith("What number"):
        assert answer == scene["text"]["value"]
    elif m := re.match(r"Which is larger, the (\w+ \w+) or the (\w+ \w+)\?", stem):
        (a,), (b,) = _objects_named(scene, m[1]), _objects_named(scene, m[2])
        expected = (
            "they are the same size"
            if a["size"] == b["size"]
            else f"the {m[1] if a['size'] == 'large' else m[2]}"
        )
        assert answer == expected
    else:
        assert stem == "Which of these shapes is in the image?"
        present = {f"{o['color']} {o['shape']}" for o in objects}
        assert answer in present
        assert not any(o in present for k, o in q.options.items() if k != q.answer)


def test_answers_agree_with_the_scene():
    for index in range(N):
        _check_answer(example(HELDOUT_SEED, index))


def test_pixels_agree_with_the_scene():
    """Each shape's centre pixel has its colour; text and bars leave black ink."""
    for index in range(60):
        ex = example(TRAIN_SEED, index)
        pixels = np.asarray(ex.image())
        assert pixels.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        if ex.scene["kind"] == "chart":
            assert (pixels.sum(axis=2) == 0).any()
            continue
        for obj in ex.scene["objects"]:
            x, y = cell_center(obj["row"], obj["col"])
            assert tuple(pixels[int(y), int(x)]) == COLORS[obj["color"]]
        if ex.scene["text"]:
            x, y = cell_center(ex.scene["text"]["row"], ex.scene["text"]["col"])
            cell = pixels[int(y) - 12 : int(y) + 12, int(x) - 20 : int(x) + 20]
            assert (cell.max(axis=2) < 80).sum() > 20


def test_the_demo_sample_is_a_generated_scene():
    ours = np.asarray(load_image(write_sample_image_tmp()).rgb)
    assert np.array_equal(ours, np.asarray(render(SAMPLE_SCENE)))
    assert describe(SAMPLE_SCENE) == SAMPLE_DESCRIPTION
    options = dict(line.split(". ", 1) for line in SAMPLE_QUESTION.splitlines()[1:])
    assert options[SAMPLE_ANSWER] in SAMPLE_DESCRIPTION


def write_sample_image_tmp():
    import tempfile
    from pathlib import Path

    return write_sample_image(Path(tempfile.mkdtemp()) / "sample.png")


def test_written_split_is_in_the_eval_format(tmp_path):
    path = write_split(tmp_path, "heldout", HELDOUT_SEED, 5, forms=True)
    lines = path.read_text().splitlines()
    assert len(lines) == 5
    for line in lines:
        record = json.loads(line)
        assert {"id", "image", "question", "options", "answer", "category", "scene"} <= set(record)
        assert record["answer"] in record["options"] and record["category"] in CATEGORIES
        assert not record["image"].startswith("/")
        assert load_image(tmp_path / record["image"]).width == IMAGE_SIZE
        assert set(record["forms"]) == set(FORMS)
    again = tmp_path / "again"
    write_split(again, "heldout", HELDOUT_SEED, 5, forms=True)
    assert (again / "heldout.jsonl").read_text() == path.read_text()


def test_training_forms_use_the_runtime_prompts():
    for index in range(50):
        ex = example(TRAIN_SEED, index)
        question = format_question(ex.question.question, ex.question.options)
        assert ex.question.prompt_text() == question
        assert training_pair(ex, "direct") == (
            prompts.direct_prompt(question),
            f"Answer: {ex.question.answer}",
        )
        assert training_pair(ex, "caption") == (prompts.CAPTION_PROMPT, describe(ex.scene))
        request, target = training_pair(ex, "extract")
        hint = hint_from_question(question)
        assert request == prompts.extraction_prompt(hint)
        assert target.startswith(describe(ex.scene))
        facts = extraction_facts(ex.scene, hint, ex.question.statement)
        assert target == " ".join([describe(ex.scene), *facts])


def test_extraction_states_what_the_question_needs():
    """Totals, colours, text and the hint's fallback: the statement itself is in the target."""
    verbatim = 0
    for index in range(200):
        ex = example(HELDOUT_SEED, index)
        _, target = training_pair(ex, "extract")
        verbatim += ex.question.statement in target
        if ex.question.category in ("text", "color") and ex.scene["kind"] == "shapes":
            assert ex.question.statement in target
    assert verbatim >= 80


def test_sample_question_answer_is_in_its_extraction():
    from export.scenes.forms import Example
    from export.scenes.questions import Question

    options = dict(line.split(". ", 1) for line in SAMPLE_QUESTION.splitlines()[1:])
    q = Question(SAMPLE_QUESTION.splitlines()[0], options, SAMPLE_ANSWER, "color", "")
    _, target = training_pair(Example("sample", SAMPLE_SCENE, q), "extract")
    assert options[SAMPLE_ANSWER] in target


def test_positions_name_every_cell_once():
    assert len(set(POSITIONS)) == 9 and "center" in POSITIONS


def test_unknown_form_is_a_user_error():
    from edge_et.errors import EdgeEtError

    with pytest.raises(EdgeEtError, match="unknown training form"):
        training_pair(example(0, 0), "poem")
