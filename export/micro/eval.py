"""How well an exported micro perception model writes what it was trained to write, through
llama.cpp (the runtime's own Pipeline, greedy), on held-out scenes.

    edge-et export micro-eval --bundle DIR --form extract [--limit 200] [--json]

Per form: `direct` is scored by its answer letter (edge_et.core.choices.answer_letter: a
sentence that begins with "A" is not option A), and its answers are kept (`predictions`) so
that a later rule can score them again without a model run; `caption` and `extract` by exact match
with the ground-truth target, by the share of the target's sentences that appear word for
word in the output (sentence recall), and, for `extract`, by whether every sentence that
states what the question needs (the hint-topic facts) is there. This measures perception
alone; `edge-et eval` measures whole systems.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import replace
from io import BytesIO
from pathlib import Path

from edge_et.bundle.manifest import Bundle
from edge_et.core.choices import answer_letter
from edge_et.core.images import load_image_bytes
from edge_et.errors import InputError
from edge_et.runtime.pipeline import Pipeline, RunOptions
from export.scenes import FORMS, example, training_pair
from export.scenes.forms import HELDOUT_SEED, SHIFTED_SEED

MODES = {"direct": "direct", "direct-text": "direct", "caption": "extract", "extract": "extract"}
_SENTENCE = re.compile(r"(?<=\.)\s+")


def sentences(text: str) -> list[str]:
    """Split after each period that ends a sentence."""
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def score(form: str, ex, output: str, answer: str) -> dict:
    """Scores of one output against example `ex` (see the module docstring)."""
    if form in ("direct", "direct-text"):
        options = ex.question.options
        return {"correct": answer_letter(answer, "".join(options), options) == ex.question.answer}
    _, target = training_pair(ex, form)
    wanted = sentences(target)
    got = set(sentences(output))
    recall = sum(s in got for s in wanted) / len(wanted)
    result = {"exact": output.strip() == target, "sentence_recall": recall}
    if form == "extract":
        caption_sentences = len(sentences(training_pair(ex, "caption")[1]))
        result["facts_present"] = all(s in got for s in wanted[caption_sentences:])
    return result


def evaluate(
    bundle_dir: Path,
    form: str,
    *,
    limit: int = 200,
    seed: int = HELDOUT_SEED,
    show: int = 0,
    stream: str = "classic",
) -> dict:
    """Run `limit` held-out examples of `stream` through the bundle's perception stage; return
    means. For "shifted" (matplotlib's pictures) the seed is its own, SHIFTED_SEED."""
    if form not in FORMS:
        raise InputError(f"unknown form {form!r}; choose one of: {', '.join(FORMS)}")
    rows, answers, started = [], [], time.perf_counter()
    with Pipeline(Bundle.load(bundle_dir)) as pipeline:
        hint = None
        if form == "caption":
            # Caption mode is caption-think, which wants a reasoner; "extract" with the caption
            # as its prefix and an empty hint sends exactly the caption prompt (prompts.py).
            pipeline.prompts = replace(pipeline.prompts, extraction_prefix=pipeline.prompts.caption)
            hint = ""
        for index in range(limit):
            ex = example(SHIFTED_SEED if stream == "shifted" else seed, index, stream)
            buffer = BytesIO()
            ex.image().save(buffer, format="PNG")
            image = load_image_bytes(buffer.getvalue(), name=ex.id)
            result = pipeline.perceive(
                image, ex.question.prompt_text(), RunOptions(mode=MODES[form], seed=0, hint=hint)
            )
            rows.append(score(form, ex, result.extraction, result.answer))
            answers.append({"id": ex.id, "gold": ex.question.answer, "answer": result.answer})
            if index < show:
                print(f"{ex.id} [{ex.question.category}] {result.extraction}", file=sys.stderr)
    keys = rows[0].keys()
    means = {k: round(sum(float(r[k]) for r in rows) / len(rows), 4) for k in keys}
    return {
        "form": form,
        "stream": stream,
        "examples": len(rows),
        "seed": seed,
        **means,
        "seconds_per_example": round((time.perf_counter() - started) / len(rows), 3),
        **({"predictions": answers} if form.startswith("direct") else {}),
    }
