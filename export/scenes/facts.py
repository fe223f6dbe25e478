"""What an extraction adds to the caption: facts about the topics the hint names.

The extraction prompt carries a hint, not the question (docs/method.md, stage 1), and edge-et's
default hint is a fixed rule over the question's words (edge_et.core.hints): "How many green
shapes are there?" becomes "the number of each kind of object ..., the colors of the
objects ... and the shapes of the objects ...". A target that stated "There are 0 green
shapes." would then ask the model for something its input does not contain. So the
extraction target states, for every topic the hint names, the facts of the scene a question
on that topic needs (all counts, including zeros; every colour; neighbours; text; sizes),
and the question's own statement only when the hint quotes the question itself (the rule's
fallback). The statement a question needs is thereby always derivable from the target, and
for totals, colours, text and chart neighbours it is there word for word.
"""

from __future__ import annotations

from edge_et.core.hints import TOPICS
from export.scenes.questions import name, place, plural
from export.scenes.render import COLORS, SHAPES

TOPIC_KEYS = ("count", "color", "position", "text", "size", "shape", "action")
_PHRASES = {phrase: key for (phrase, _), key in zip(TOPICS, TOPIC_KEYS)}
FALLBACK = "the details needed to answer"


def hint_topics(hint: str) -> list[str]:
    """The TOPIC_KEYS whose phrase occurs in `hint`, in the hint rule's order."""
    return [key for phrase, key in _PHRASES.items() if phrase in hint]


def extraction_facts(scene: dict, hint: str, statement: str) -> list[str]:
    """The sentences appended to the caption for this hint (see the module docstring)."""
    topics = hint_topics(hint)
    facts = _chart_facts(scene, topics) if scene["kind"] == "chart" else _shape_facts(scene, topics)
    if hint.startswith(FALLBACK):
        facts.append(statement)
    return facts


def _is_are(n: int) -> str:
    return "is" if n == 1 else "are"


def _shape_facts(scene: dict, topics: list[str]) -> list[str]:
    objects = scene["objects"]
    facts: list[str] = []
    for topic in topics:
        if topic == "count":
            kinds = ", ".join(
                f"{sum(o['shape'] == s for o in objects)} "
                f"{plural(s, sum(o['shape'] == s for o in objects))}"
                for s in SHAPES
            )
            facts.append(
                f"There {_is_are(len(objects))} {len(objects)} "
                f"{plural('shape', len(objects))} in the image. By kind: {kinds}."
            )
            if "color" in topics:
                facts.append(
                    "By color: "
                    + ", ".join(
                        f"{sum(o['color'] == c for o in objects)} {c}" for c in sorted(COLORS)
                    )
                    + "."
                )
        elif topic == "color":
            kinds = [o["shape"] for o in objects]
            facts += [
                f"The {o['shape']} is {o['color']}."
                if kinds.count(o["shape"]) == 1
                else f"The {o['shape']} {place(o)} is {o['color']}."
                for o in objects
            ]
        elif topic == "position":
            facts += _neighbours(objects)
        elif topic == "text":
            text = scene.get("text")
            kind = "number" if text and text["value"].isdigit() else "word"
            facts.append(
                f"The {kind} written in the image is {text['value']}."
                if text
                else "There is no text in the image."
            )
        elif topic == "size":
            for size in ("large", "small"):
                named = [f"the {name(o)}" for o in objects if o["size"] == size]
                if named:
                    facts.append(
                        f"The {size} {plural('shape', len(named))} "
                        f"{_is_are(len(named))} {_join(named)}."
                    )
        elif topic == "shape":
            present = list(dict.fromkeys(o["shape"] for o in objects))
            facts.append(f"The kinds of shape in the image are: {_join(present)}.")
    return facts


def _neighbours(objects: list[dict]) -> list[str]:
    """'The X is to the left of the Y.' for each pair of nearest neighbours in a row,
    'The X is above the Y.' for each in a column."""
    facts = []
    for same, other in (("row", "col"), ("col", "row")):
        lines: dict[int, list[dict]] = {}
        for o in objects:
            lines.setdefault(o[same], []).append(o)
        for members in lines.values():
            members = sorted(members, key=lambda o: o[other])
            relation = "to the left of" if same == "row" else "above"
            facts += [
                f"The {name(a)} is {relation} the {name(b)}." for a, b in zip(members, members[1:])
            ]
    return facts


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _chart_facts(scene: dict, topics: list[str]) -> list[str]:
    bars = scene["bars"]
    colors = [b["color"] for b in bars]
    facts: list[str] = []
    for topic in topics:
        if topic == "count":
            facts.append(f"There are {len(bars)} bars in the chart.")
        elif topic == "color":
            facts.append(f"The bar colors from left to right are {_join(colors)}.")
        elif topic == "position":
            facts += [
                f"The bar directly to the right of the {a} bar is the {b} bar."
                for a, b in zip(colors, colors[1:])
            ]
        elif topic == "text":
            facts += [
                f"The number written above the {b['color']} bar is {b['value']}." for b in bars
            ]
        elif topic == "size":
            tallest = max(bars, key=lambda b: b["value"])["color"]
            shortest = min(bars, key=lambda b: b["value"])["color"]
            facts.append(
                f"The tallest bar is the {tallest} bar and the shortest bar is the {shortest} bar."
            )
        elif topic == "shape":
            facts.append("The bars are rectangles.")
    return facts
