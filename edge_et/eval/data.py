"""Evaluation data from outside the project: `edge-et eval convert easy-vqa`.

easy-VQA (PyPI `easy-vqa==1.0`, MIT, Victor Zhou) is a synthetic visual QA set: 64x64
pictures of one coloured shape, open questions with one-word answers. Its test split has
1,000 images and 9,673 questions; the package reads them with `get_test_questions()`
(texts, answers, image ids) and `get_test_image_paths()` (image id -> PNG path), and lists
the 13 possible answers in `get_answers()`.

Each question becomes one multiple-choice line of the eval format (edge_et.eval.run), with
distractors of the answer's own type, drawn with a seed per question:
- shape (circle, rectangle, triangle): the other two shapes, so 3 options: easy-VQA
  knows only three shapes, and a distractor of another type would give the answer away;
- colour (the 8 colours): three other colours, 4 options;
- yes/no: the two options "yes" and "no" only. Padding them with two unrelated options
  would only lower chance accuracy on paper; every report states chance per category.
Option order is shuffled by the same seed, so the correct letter is spread evenly.
The question keeps easy-VQA's wording, with its first letter capitalised.

The images are copied next to the JSONL, into `<stem>_images/`, so the file stays usable
after the package is gone.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edge_et.core import atomic
from edge_et.errors import InputError, MissingExtra
from edge_et.eval.metrics import LETTERS

SHAPES = ("circle", "rectangle", "triangle")
YES_NO = ("yes", "no")
INSTALL_HINT = "pip install 'edge-et[eval]' (or: pip install easy-vqa==1.0)"


@dataclass(frozen=True)
class SourceQuestion:
    """One question as easy-VQA stores it."""

    index: int
    text: str
    answer: str
    image_id: int


@dataclass
class ConvertSummary:
    """What a conversion wrote."""

    out: Path
    questions: int = 0
    images: int = 0
    categories: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "out": str(self.out),
            "questions": self.questions,
            "images": self.images,
            "categories": self.categories,
        }


def answer_pools(answers: list[str]) -> dict[str, tuple[str, ...]]:
    """easy-VQA's answers grouped by type: category name -> its possible answers."""
    colours = tuple(a for a in answers if a not in SHAPES and a not in YES_NO)
    return {"shape": SHAPES, "color": colours, "yes/no": YES_NO}


def category_of(answer: str, pools: dict[str, tuple[str, ...]]) -> str:
    for name, pool in pools.items():
        if answer in pool:
            return name
    raise InputError(f"easy-vqa answer {answer!r} is of no known type; is this easy-vqa 1.0?")


def to_eval_line(
    question: SourceQuestion, pools: dict[str, tuple[str, ...]], seed: int, image: str
) -> dict:
    """The eval-format object for one question (module doc: distractors and order)."""
    category = category_of(question.answer, pools)
    rng = random.Random(f"easy-vqa:{seed}:{question.index}")
    others = [a for a in pools[category] if a != question.answer]
    choices = [question.answer] + rng.sample(others, min(3, len(others)))
    rng.shuffle(choices)
    text = question.text.strip()
    return {
        "id": f"easy-vqa-test-{question.index}",
        "image": image,
        "question": text[:1].upper() + text[1:],
        "options": dict(zip(LETTERS, choices)),
        "answer": LETTERS[choices.index(question.answer)],
        "category": category,
    }


def select(questions: list[SourceQuestion], limit: int | None, seed: int) -> list[SourceQuestion]:
    """All questions, or a seeded sample of `limit` of them kept in the source order."""
    if limit is None or limit >= len(questions):
        return questions
    chosen = random.Random(f"easy-vqa-sample:{seed}").sample(range(len(questions)), limit)
    return [questions[i] for i in sorted(chosen)]


def load_test_split():
    """(questions, image paths by id, answers) from the installed easy-vqa package."""
    try:
        import easy_vqa
    except ImportError:
        raise MissingExtra(
            f"the easy-vqa package is not installed: {INSTALL_HINT}", extra="eval"
        ) from None
    texts, answers, image_ids = easy_vqa.get_test_questions()
    questions = [
        SourceQuestion(i, t, a, int(m))
        for i, (t, a, m) in enumerate(zip(texts, answers, image_ids))
    ]
    return questions, easy_vqa.get_test_image_paths(), easy_vqa.get_answers()


def convert_easy_vqa(out: Path, *, seed: int = 0, limit: int | None = None) -> ConvertSummary:
    """Write easy-VQA's test split (or a seeded sample) as an eval JSONL at `out`."""
    if limit is not None and limit < 1:
        raise InputError("--limit must be at least 1")
    questions, image_paths, answers = load_test_split()
    pools = answer_pools(answers)
    out = Path(out)
    folder = out.parent / f"{out.stem}_images"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return _write(out, folder, select(questions, limit, seed), image_paths, pools, seed)
    except OSError as exc:
        raise InputError(f"cannot write '{out}': {exc.strerror or exc}") from None


def _write(
    out: Path,
    folder: Path,
    questions: list[SourceQuestion],
    image_paths: dict,
    pools: dict,
    seed: int,
) -> ConvertSummary:
    summary, counts, copied = ConvertSummary(out=out), Counter(), set()
    with atomic.atomic_file(out) as target:  # a stopped conversion leaves no half data file
        for question in questions:
            name = f"{question.image_id}.png"
            if question.image_id not in copied:
                shutil.copyfile(image_paths[question.image_id], folder / name)
                copied.add(question.image_id)
            line = to_eval_line(question, pools, seed, f"{folder.name}/{name}")
            counts[line["category"]] += 1
            target.write(json.dumps(line, ensure_ascii=False) + "\n")
    summary.questions, summary.images = len(questions), len(copied)
    summary.categories = dict(sorted(counts.items()))
    return summary
