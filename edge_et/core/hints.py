"""The extraction hint when the caller gives none: a fixed rule over the question's words.

The paper had Qwen3-8B write one hint phrase per question ("the spatial relationships
between objects in the image"). Without `--hint`, edge-et derives a phrase of the same
kind from the question stem, so the run costs no extra model call:

1. The stem is the question without its answer options (lines such as `A. ...`,
   `(B) ...`, `Options: ...`) and without a leading `Question:`/`Hint:` label.
2. Each topic whose cue words occur in the stem contributes its phrase, in the fixed
   order of TOPICS (counting, colour, position, text, size, shape, action).
3. If no topic matches, the hint is `the details needed to answer "<stem>"`.

`--hint auto` instead asks the reasoning model (prompts.hint_request).
"""

from __future__ import annotations

import re

TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "the number of each kind of object in the image",
        ("how many", "number of", "count", "how much"),
    ),
    (
        "the colors of the objects in the image",
        ("color", "colour", "red", "blue", "green", "yellow", "purple", "orange", "black", "white"),
    ),
    (
        "the spatial relationships between objects in the image",
        (
            "left",
            "right",
            "above",
            "below",
            "under",
            "behind",
            "front",
            "between",
            "next to",
            "where",
            "position",
            "top",
            "bottom",
            "corner",
            "center",
            "near",
        ),
    ),
    (
        "any text, numbers and labels written in the image",
        ("text", "written", "say", "read", "word", "letter", "label", "sign", "title", "digit"),
    ),
    (
        "the relative sizes of the objects in the image",
        ("bigger", "smaller", "larger", "largest", "smallest", "size", "tallest", "taller"),
    ),
    ("the shapes of the objects in the image", ("shape", "form")),
    (
        "the actions and interactions taking place in the image",
        ("doing", "action", "playing", "holding", "wearing"),
    ),
)

_OPTION_LINE = re.compile(r"^\s*(\(?[A-Ha-h][.)]|options?\s*:)", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(question|hint)\s*:\s*", re.IGNORECASE)


def question_stem(question: str) -> str:
    """The question without its options and label, on one line."""
    kept = [line for line in question.splitlines() if not _OPTION_LINE.match(line)]
    stem = " ".join(" ".join(kept).split())
    return _LABEL.sub("", stem)


def hint_from_question(question: str) -> str:
    """The extraction hint for `question` by the rule in this module's docstring.

    Args:
        question: the question, its options (A. ..., B. ...) on later lines or not.

    Returns:
        A short noun phrase ("the colors of the objects in the image"); never empty. Raises
        nothing.
    """
    stem = question_stem(question)
    words = " " + re.sub(r"[^a-z0-9 ]", " ", stem.lower()) + " "
    phrases = [
        phrase
        for phrase, cues in TOPICS
        if any(f" {cue} " in words or f" {cue}s " in words for cue in cues)
    ]
    if not phrases:
        return f'the details needed to answer "{stem}"' if stem else "the main objects in the image"
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]
