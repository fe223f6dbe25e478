"""Examples, the three training forms, and the eval-format JSONL splits.

Example `index` of split seed `seed` is drawn from its own `random.Random`, so any example
can be rebuilt alone and the train (seed 0) and held-out (seed 1) splits never share a
scene stream. The training forms use the runtime's own prompt functions, so a model is
trained on exactly the request it gets at inference (edge_et.runtime.pipeline):

    direct   prompts.direct_prompt(question)                   -> "Answer: B"
    direct-text  the same prompt -> the answer statement, then "Answer: B": the end-to-end
             baseline with an answer-with-text target (docs/micro-model.md, "The end-to-end
             baseline": with "Answer: B" alone the letter's loss never left ln 4)
    caption  PromptSet().caption                               -> describe(scene)
    extract  prompts.extraction_prompt(hint_from_question(q))  -> describe(scene) + the facts
             of the hint's topics (facts.py says why not the bare statement)
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from edge_et.core import prompts
from edge_et.core.hints import hint_from_question
from edge_et.errors import InputError
from export.scenes.facts import extraction_facts
from export.scenes.questions import Question, describe, pick_question
from export.scenes.render import render, sample_scene
from export.scenes.shifted import SHIFTED_SEED, render_shifted, sample_shifted_scene  # noqa: F401 - SHIFTED_SEED beside the other seeds
from export.scenes.varied import render_varied, sample_varied_scene

FORMS = ("direct", "caption", "extract", "direct-text")
TRAIN_SEED, HELDOUT_SEED = 0, 1
# Which renderer draws a stream: render.py's fixed style, varied.py's, or the two alternating.
STREAMS = ("classic", "varied", "mix")
# Held out as a whole: pictures drawn by matplotlib (shifted.py), never a training stream.
EVAL_STREAMS = STREAMS + ("shifted",)


@dataclass(frozen=True)
class Example:
    """One scene and one question about it."""

    id: str
    scene: dict
    question: Question

    def image(self):
        """The rendered scene (a Pillow RGB image) at its own size: 128 pixels unless varied."""
        if "figure" in self.scene:
            return render_shifted(self.scene)
        return render_varied(self.scene) if "canvas" in self.scene else render(self.scene)

    def record(self, image_path: str) -> dict:
        """The eval-format JSONL object (edge-et eval reads it)."""
        q = self.question
        return {
            "id": self.id,
            "image": image_path,
            "question": q.question,
            "options": q.options,
            "answer": q.answer,
            "category": q.category,
            "scene": self.scene,
            "statement": q.statement,
        }


def example(seed: int, index: int, stream: str = "classic") -> Example:
    """Example `index` of the stream `seed` drawn by `stream`'s renderer; deterministic.

    The varied stream has its own random streams ("v" ids), so it never repeats a classic scene;
    "mix" takes odd indices from it and even ones from the classic stream; "shifted" ("m" ids)
    is matplotlib's, for evaluation only.
    """
    if stream not in EVAL_STREAMS:
        raise InputError(
            f"unknown scene stream {stream!r}; choose one of: {', '.join(EVAL_STREAMS)}"
        )
    if stream == "shifted":
        rng = random.Random(f"edge-et-shifted-scenes/{seed}/{index}")
        scene = sample_shifted_scene(rng)
        return Example(id=f"m{seed}-{index:06d}", scene=scene, question=pick_question(scene, rng))
    if stream == "varied" or (stream == "mix" and index % 2):
        rng = random.Random(f"edge-et-varied-scenes/{seed}/{index}")
        scene = sample_varied_scene(rng)
        return Example(id=f"v{seed}-{index:06d}", scene=scene, question=pick_question(scene, rng))
    rng = random.Random(f"edge-et-scenes/{seed}/{index}")
    scene = sample_scene(rng)
    return Example(id=f"s{seed}-{index:06d}", scene=scene, question=pick_question(scene, rng))


def training_pair(ex: Example, form: str) -> tuple[str, str]:
    """(request text after the image, target text) of `ex` in training form `form`."""
    question = ex.question.prompt_text()
    if form == "direct":
        return prompts.direct_prompt(question), f"Answer: {ex.question.answer}"
    if form == "direct-text":
        return prompts.direct_prompt(
            question
        ), f"{ex.question.statement} Answer: {ex.question.answer}"
    if form == "caption":
        return prompts.PromptSet().caption, describe(ex.scene)
    if form == "extract":
        hint = hint_from_question(question)
        facts = extraction_facts(ex.scene, hint, ex.question.statement)
        return prompts.extraction_prompt(hint), " ".join([describe(ex.scene), *facts])
    raise InputError(f"unknown training form {form!r}; choose one of: {', '.join(FORMS)}")


def write_split(
    out: Path, name: str, seed: int, count: int, *, forms: bool = False, stream: str = "classic"
) -> Path:
    """Write `count` examples as `out/<name>.jsonl` with PNGs under `out/images/<name>/`.

    Image paths in the JSONL are relative to `out`. With `forms`, each record also carries
    its three training pairs under "forms" (form -> {"prompt", "target"}). Returns the JSONL.
    """
    if count < 1:
        raise InputError(f"a split needs at least one example, got {count}")
    out = Path(out)
    images = out / "images" / name
    images.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.jsonl"
    with target.open("w", encoding="utf-8") as handle:
        for index in range(count):
            ex = example(seed, index, stream)
            relative = f"images/{name}/{ex.id}.png"
            ex.image().save(out / relative, format="PNG")
            record = ex.record(relative)
            if forms:
                record["forms"] = {
                    f: dict(zip(("prompt", "target"), training_pair(ex, f))) for f in FORMS
                }
            handle.write(json.dumps(record, sort_keys=True) + "\n")
    return target
