"""Seeded procedural scenes for the micro perception model and its evaluation.

    render.py     sample a ground-truth scene, draw it (numpy + Pillow only)
    questions.py  the caption, multiple-choice questions and their answer statements
    forms.py      the three training forms (direct, caption, extract) and the eval JSONL

Nothing here imports torch, so the evaluation side can use it without the export extra.
"""

from export.scenes.forms import FORMS, Example, example, training_pair, write_split
from export.scenes.questions import CATEGORIES, Question, describe, format_question
from export.scenes.render import IMAGE_SIZE, render

__all__ = [
    "CATEGORIES",
    "FORMS",
    "IMAGE_SIZE",
    "Example",
    "Question",
    "describe",
    "example",
    "format_question",
    "render",
    "training_pair",
    "write_split",
]
