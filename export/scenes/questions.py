"""Ground truth into words: the generic caption, and multiple-choice questions with the
declarative statement each one needs.

Every function reads only the scene dict (render.py) and a seeded `random.Random`, so the
same scene and seed give the same question, options and answer letter. A `Question`
carries the statement that turns it into visual extraction tuning data (docs/method.md: the
QA pair as a self-contained declarative sentence, which the target description includes).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from export.scenes.render import COLORS, POSITIONS, SHAPES, WORDS, position_name

CATEGORIES = ("count", "color", "position", "text", "comparison", "existence")
LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Question:
    """One multiple-choice question about a scene.

    Attributes:
        question: the stem, without options.
        options: letter -> option text, A-D.
        answer: the right letter.
        category: one of CATEGORIES.
        statement: the answer as a self-contained sentence ("There are 3 circles.").
    """

    question: str
    options: dict[str, str]
    answer: str
    category: str
    statement: str

    def prompt_text(self) -> str:
        """Stem and options as the runtime receives them (MMStar style, like SAMPLE_QUESTION)."""
        return format_question(self.question, self.options)


def format_question(question: str, options: dict[str, str]) -> str:
    """'stem\\nA. x\\nB. y\\nC. z\\nD. w': the question text every stage is given."""
    return question + "".join(f"\n{letter}. {options[letter]}" for letter in sorted(options))


def name(obj: dict) -> str:
    """'red circle'."""
    return f"{obj['color']} {obj['shape']}"


def plural(word: str, n: int) -> str:
    """`word` with an s unless n is 1."""
    return word if n == 1 else word + "s"


def with_article(phrase: str) -> str:
    """'a red circle', 'an orange star'."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def describe(scene: dict) -> str:
    """The generic caption: every object, its size, colour, position, and any text."""
    if scene["kind"] == "chart":
        bars = scene["bars"]
        parts = [with_article(f"{b['color']} bar") + f" with the value {b['value']}" for b in bars]
        return (
            f"A bar chart with {len(bars)} bars. From left to right: "
            + ", ".join(parts[:-1])
            + " and "
            + parts[-1]
            + "."
        )
    objects = scene["objects"]
    parts = [with_article(f"{o['size']} {name(o)}") + " " + place(o) for o in objects]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    text = ""
    if scene.get("text"):
        kind = "number" if scene["text"]["value"].isdigit() else "word"
        text = f" The {kind} {scene['text']['value']} is written in black {place(scene['text'])}."
    noun = plural("shape", len(objects))
    background = scene.get("background", {}).get("name", "white")  # render.py's scenes: white
    return (
        f"{with_article(background).capitalize()} image with {len(objects)} {noun}: {listed}.{text}"
    )


def place(item: dict) -> str:
    """'in the top left', 'in the center'."""
    where = position_name(item["row"], item["col"])
    return "in the center" if where == "center" else f"in the {where}"


def questions(scene: dict, rng: random.Random) -> list[Question]:
    """Every question the scene supports, one per applicable template."""
    makers = _CHART_MAKERS if scene["kind"] == "chart" else _SHAPE_MAKERS
    found = [maker(scene, rng) for maker in makers]
    return [q for q in found if q is not None]


def pick_question(scene: dict, rng: random.Random) -> Question:
    """One question: a category first (uniform over those the scene supports), then one of it."""
    candidates = questions(scene, rng)
    by_category: dict[str, list[Question]] = {}
    for q in candidates:
        by_category.setdefault(q.category, []).append(q)
    category = rng.choice(sorted(by_category))
    return rng.choice(by_category[category])


def _choices(
    answer: str, pool: list[str], rng: random.Random, category: str, question: str, statement: str
) -> Question:
    """Four options: the answer and three distinct distractors from `pool`, shuffled."""
    distractors = rng.sample(sorted(set(pool) - {answer}), 3)
    options = distractors + [answer]
    rng.shuffle(options)
    letters = dict(zip(LETTERS, options))
    letter = LETTERS[options.index(answer)]
    return Question(question, letters, letter, category, statement)


# -- shapes scenes --------------------------------------------------------------------------


def _count(scene: dict, rng: random.Random) -> Question:
    objects = scene["objects"]
    counts = Counter(o["shape"] for o in objects)
    kind = rng.choice(["all", "shape", "color"])
    if kind == "all":
        n, question = len(objects), "How many shapes are there in the image?"
        statement = f"There {'is' if n == 1 else 'are'} {n} {plural('shape', n)} in the image."
    elif kind == "shape":
        shape = rng.choice(SHAPES)
        n = counts[shape]
        question = f"How many {shape}s are there in the image?"
        statement = f"There {'is' if n == 1 else 'are'} {n} {plural(shape, n)} in the image."
    else:
        color = rng.choice(sorted(COLORS))
        n = sum(o["color"] == color for o in objects)
        question = f"How many {color} shapes are there in the image?"
        statement = (
            f"There {'is' if n == 1 else 'are'} {n} {color} {plural('shape', n)} in the image."
        )
    return _choices(str(n), [str(i) for i in range(7)], rng, "count", question, statement)


def _unique(objects: list[dict], key) -> list[dict]:
    counts = Counter(key(o) for o in objects)
    return [o for o in objects if counts[key(o)] == 1]


def _color(scene: dict, rng: random.Random) -> Question | None:
    unique = _unique(scene["objects"], lambda o: o["shape"])
    if not unique:
        return None
    obj = rng.choice(unique)
    return _choices(
        obj["color"],
        sorted(COLORS),
        rng,
        "color",
        f"What color is the {obj['shape']}?",
        f"The {obj['shape']} is {obj['color']}.",
    )


# (relation word, question phrase, test that `other` stands in that relation to `ref`)
_RELATIONS = (
    ("left", "to the left of", lambda o, r: o["row"] == r["row"] and o["col"] < r["col"]),
    ("right", "to the right of", lambda o, r: o["row"] == r["row"] and o["col"] > r["col"]),
    ("above", "above", lambda o, r: o["col"] == r["col"] and o["row"] < r["row"]),
    ("below", "below", lambda o, r: o["col"] == r["col"] and o["row"] > r["row"]),
)


def _position(scene: dict, rng: random.Random) -> Question | None:
    objects = scene["objects"]
    unique = _unique(objects, name)
    if not unique:
        return None
    ref = rng.choice(unique)
    pairs = []
    for _, phrase, test in _RELATIONS:
        hits = [o for o in objects if o is not ref and test(o, ref)]
        if len(hits) == 1:
            pairs.append((phrase, hits[0]))
    if pairs and rng.random() < 0.6:
        phrase, other = rng.choice(pairs)
        return _choices(
            other["shape"],
            list(SHAPES),
            rng,
            "position",
            f"What shape is {phrase} the {name(ref)}?",
            f"The shape {phrase} the {name(ref)} is {with_article(other['shape'])}.",
        )
    where = position_name(ref["row"], ref["col"])
    statement = f"The {name(ref)} is {place(ref)}."
    return _choices(
        where,
        list(POSITIONS),
        rng,
        "position",
        f"Where is the {name(ref)} in the image?",
        statement,
    )


def _text(scene: dict, rng: random.Random) -> Question | None:
    text = scene.get("text")
    if not text:
        return None
    value = text["value"]
    if value.isdigit():
        pool = [str(i) for i in range(1, 100)]
        return _choices(
            value,
            pool,
            rng,
            "text",
            "What number is written in the image?",
            f"The number written in the image is {value}.",
        )
    return _choices(
        value,
        list(WORDS),
        rng,
        "text",
        "What word is written in the image?",
        f"The word written in the image is {value}.",
    )


def _comparison(scene: dict, rng: random.Random) -> Question | None:
    unique = _unique(scene["objects"], name)
    if len(unique) < 2:
        return None
    first, second = rng.sample(unique, 2)
    present = {name(o) for o in scene["objects"]}
    absent = [f"{c} {s}" for c in sorted(COLORS) for s in SHAPES if f"{c} {s}" not in present]
    same = "they are the same size"
    options = [f"the {name(first)}", f"the {name(second)}", same, f"the {rng.choice(absent)}"]
    if first["size"] == second["size"]:
        answer = same
        statement = f"The {name(first)} and the {name(second)} are the same size."
    else:
        big, small = (first, second) if first["size"] == "large" else (second, first)
        answer = f"the {name(big)}"
        statement = f"The {name(big)} is larger than the {name(small)}."
    rng.shuffle(options)
    letter = LETTERS[options.index(answer)]
    return Question(
        f"Which is larger, the {name(first)} or the {name(second)}?",
        dict(zip(LETTERS, options)),
        letter,
        "comparison",
        statement,
    )


def _existence(scene: dict, rng: random.Random) -> Question:
    present = sorted({name(o) for o in scene["objects"]})
    answer = rng.choice(present)
    absent = [f"{c} {s}" for c in sorted(COLORS) for s in SHAPES if f"{c} {s}" not in present]
    return _choices(
        answer,
        absent + [answer],
        rng,
        "existence",
        "Which of these shapes is in the image?",
        f"The image contains {with_article(answer)}.",
    )


_SHAPE_MAKERS = (_count, _color, _position, _text, _comparison, _existence)


# -- charts ---------------------------------------------------------------------------------


def _chart_count(scene: dict, rng: random.Random) -> Question:
    n = len(scene["bars"])
    return _choices(
        str(n),
        [str(i) for i in range(1, 8)],
        rng,
        "count",
        "How many bars are there in the chart?",
        f"There are {n} bars in the chart.",
    )


def _chart_color(scene: dict, rng: random.Random) -> Question:
    bars = scene["bars"]
    index = rng.randrange(len(bars))
    place = (
        "leftmost"
        if index == 0
        else "rightmost"
        if index == len(bars) - 1
        else ("second" if index == 1 else "third") + " from the left"
    )
    color = bars[index]["color"]
    return _choices(
        color,
        sorted(COLORS),
        rng,
        "color",
        f"What color is the {place} bar?",
        f"The {place} bar is {color}.",
    )


def _chart_position(scene: dict, rng: random.Random) -> Question:
    bars = scene["bars"]
    i = rng.randrange(len(bars) - 1)
    left, right = bars[i]["color"], bars[i + 1]["color"]
    return _choices(
        right,
        sorted(COLORS),
        rng,
        "position",
        f"Which bar is directly to the right of the {left} bar?",
        f"The bar directly to the right of the {left} bar is the {right} bar.",
    )


def _chart_text(scene: dict, rng: random.Random) -> Question:
    bar = rng.choice(scene["bars"])
    value = str(bar["value"])
    return _choices(
        value,
        [str(i) for i in range(1, 10)],
        rng,
        "text",
        f"What number is written above the {bar['color']} bar?",
        f"The number written above the {bar['color']} bar is {value}.",
    )


def _chart_comparison(scene: dict, rng: random.Random) -> Question:
    bars = scene["bars"]
    tallest = rng.random() < 0.5
    bar = (max if tallest else min)(bars, key=lambda b: b["value"])
    word = "tallest" if tallest else "shortest"
    pool = [b["color"] for b in bars] + sorted(COLORS)  # the chart's own colours come first
    distractors = [c for c in dict.fromkeys(pool) if c != bar["color"]][:3]
    options = distractors + [bar["color"]]
    rng.shuffle(options)
    return Question(
        f"Which bar is the {word}?",
        dict(zip(LETTERS, options)),
        LETTERS[options.index(bar["color"])],
        "comparison",
        f"The {word} bar is the {bar['color']} bar.",
    )


def _chart_existence(scene: dict, rng: random.Random) -> Question | None:
    colors = [b["color"] for b in scene["bars"]]
    absent = sorted(set(COLORS) - set(colors))
    if len(absent) < 3:
        return None
    answer = rng.choice(colors)
    return _choices(
        answer,
        absent + [answer],
        rng,
        "existence",
        "Which color of bar appears in the chart?",
        f"The chart has a {answer} bar.",
    )


_CHART_MAKERS = (
    _chart_count,
    _chart_color,
    _chart_position,
    _chart_text,
    _chart_comparison,
    _chart_existence,
)
