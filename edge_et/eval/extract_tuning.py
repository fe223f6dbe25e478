"""Visual extraction tuning data: `edge-et data extract-tuning` (docs/method.md, the paper's recipe).

For each visual QA pair, a teacher bundle writes the target a perception model is trained to
produce:
1. text only: the question and its answer become one self-contained declarative statement
   (the teacher's reasoning LLM, thinking off; `statement_role` may pick the VLM instead,
   as the authors did with Qwen3-VL-8B for both steps);
2. with the image, resized to 512x512: a fine-grained description of the image that
   incorporates that statement (the teacher's VLM). That description is the target.

Input: JSONL, one `{"image", "question", "answer"}` per line (optional `id`); lines of the
eval format (edge_et.eval.run: `options` and a letter `answer`) work too: the statement is made
from the question stem and the text of the correct option. Output: one JSON object per
line, flushed as soon as it is written; a run skips every id already in the output file,
so an interrupted run resumes where it stopped. Work goes in chunks: step 1 for a chunk,
then step 2, so with swap residency each model loads once per chunk.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edge_et.core.decoding import StageDecoding
from edge_et.core.images import LoadedImage, load_image, pixel_sha256
from edge_et.core.jsonl import local_path, parse_lines
from edge_et.core.stats import StageStats
from edge_et.errors import EdgeEtError, InputError
from edge_et.runtime.pipeline import Pipeline

# Step 1, to the teacher LLM. The wording is the authors' (visual_extraction_tuning_pipeline.py
# in markendo/downscaling_intelligence, `build_qa_statement_prompt`), for one QA pair: their
# prompt numbers several pairs of one conversation; here every line is one pair.
STATEMENT_PROMPT = (
    "Your task is to convert each question\u2013answer pair about an image into a concise, fully "
    "self-contained declarative statement. The resulting statements should be understandable on "
    "their own, without requiring the reader to refer to the original question."
    "\nQuestion #1: {question}\nAnswer: {answer}\nDeclarative Statement(s):"
)
# Step 2, to the teacher VLM with the image: the authors' description request (same file),
# The paper's "describe the fine-grained content ..." with the statements appended.
TARGET_PROMPT = (
    "Your task is to describe the fine-grained content of the image, including scenes, objects, "
    "relationships, instance location, and any text present."
    "\nAs part of your description, you should incorporate the following information about the "
    "image.\n{statements}\nDescription:"
)
TEACHER_SIZE = (512, 512)  # the authors resize every image to 512x512, aspect ratio not kept
# Greedy, as a data tool should be repeatable. Statements are one sentence; descriptions get
# lmms-eval's 1024 tokens by default (the authors allowed 2048 on a GPU).
STATEMENT_DECODING = StageDecoding(max_tokens=128)
TARGET_DECODING = StageDecoding(max_tokens=1024)
STATEMENT_ROLES = ("reasoning", "perception")


@dataclass
class QAPair:
    """One usable input line."""

    id: str
    image: Path
    question: str
    answer: str


def statement_request(question: str, answer: str) -> str:
    """Step 1's prompt for one question and its answer."""
    return STATEMENT_PROMPT.format(question=" ".join(question.split()), answer=answer.strip())


def target_request(statement: str) -> str:
    """Step 2's prompt: the fine-grained description request incorporating `statement`."""
    return TARGET_PROMPT.format(statements=statement.strip())


def clean_statement(generated: str) -> str:
    """The statement without a repeated label, list marker or surrounding quotes, on one line."""
    text = " ".join(generated.split())
    for label in ("Declarative Statement(s):", "Declarative Statement:", "Statement:"):
        if text.lower().startswith(label.lower()):
            text = text[len(label) :].strip()
    return text.lstrip("-*1. ").strip().strip('"').strip()


def teacher_image(path: Path) -> LoadedImage:
    """The picture as the teacher sees it: decoded safely, then resized to 512x512."""
    return teacher_view(load_image(path))


def teacher_view(picture: LoadedImage) -> LoadedImage:
    """A decoded picture resized to 512x512 (a Ray worker decodes the bytes it was sent)."""
    rgb = np.asarray(picture.to_pil().resize(TEACHER_SIZE, Image.BICUBIC))
    rgb.flags.writeable = False
    return LoadedImage(
        rgb=rgb,
        width=TEACHER_SIZE[0],
        height=TEACHER_SIZE[1],
        sha256=pixel_sha256(rgb),
        source=picture.source,
        format=picture.format,
        original_mode=picture.original_mode,
    )


# -- input and output ---------------------------------------------------------------------


def read_pairs(path: Path) -> tuple[list[QAPair], list[str]]:
    """Usable pairs and one-line reasons for the unusable lines; InputError if none is usable."""
    parsed, errors = parse_lines(path, parse_pair, what="question-answer lines")
    pairs, seen = [], set()
    for line, pair in parsed:
        if pair.id in seen:
            errors.append(f"line {line}: id {pair.id!r} repeats an earlier line")
            continue
        seen.add(pair.id)
        pairs.append(pair)
    return pairs, errors


def parse_pair(number: int, raw: dict, folder: Path) -> tuple[int, QAPair]:
    """One decoded input line (plain QA or eval format); ValueError if unusable."""
    answer = raw.get("answer")
    options = raw.get("options")
    if isinstance(options, dict) and isinstance(answer, str) and answer.strip().upper() in options:
        answer = options[answer.strip().upper()]  # eval format: the correct option's text
    for key, value in (
        ("image", raw.get("image")),
        ("question", raw.get("question")),
        ("answer", answer),
    ):
        if (
            not isinstance(value, (str, int, float))
            or isinstance(value, bool)
            or not str(value).strip()
        ):
            raise ValueError(f"needs a non-empty '{key}'")
    return number, QAPair(
        id=str(raw.get("id", f"line-{number}")),
        question=str(raw["question"]),
        answer=str(answer),
        image=local_path(str(raw["image"]), folder),
    )


def done_ids(out: Path) -> set[str]:
    """Ids already written to `out` (a torn last line from a crash is ignored and redone)."""
    if not out.exists():
        return set()
    ids = set()
    for line in out.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "id" in record:
            ids.add(str(record["id"]))
    return ids


# -- the two steps ------------------------------------------------------------------------


@dataclass
class TuningSummary:
    """What a run did; `failures` holds the first few one-line reasons."""

    pairs: int = 0
    skipped: int = 0  # already in the output (resumed)
    written: int = 0
    failed: int = 0  # pairs whose image could not be read: not written, retried next run
    bad_lines: int = 0
    model_loads: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, pair: QAPair, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < 5:
            self.failures.append(f"{pair.id}: {reason}")


def item_seed(seed: int, pair_id: str) -> int:
    return zlib.crc32(f"{seed}:{pair_id}".encode()) & 0x7FFFFFFF


def pending(
    pipeline: Pipeline, pairs: list[QAPair], out: Path, statement_role: str
) -> tuple[list[QAPair], TuningSummary]:
    """The pairs not yet in `out`, and a summary that counts the others as skipped; checks
    first that the teacher has the models both steps need."""
    if statement_role not in STATEMENT_ROLES:
        raise InputError(
            f"unknown statement model {statement_role!r}; choose one of: "
            f"{', '.join(STATEMENT_ROLES)}"
        )
    pipeline.bundle.require("perception")
    pipeline.bundle.require(statement_role)
    finished = done_ids(out)
    todo = [pair for pair in pairs if pair.id not in finished]
    return todo, TuningSummary(pairs=len(pairs), skipped=len(pairs) - len(todo))


def make_targets(
    pipeline: Pipeline,
    pairs: list[QAPair],
    out: Path,
    *,
    seed: int = 0,
    statement_role: str = "reasoning",
    chunk: int = 16,
    statement_decoding: StageDecoding = STATEMENT_DECODING,
    target_decoding: StageDecoding = TARGET_DECODING,
    progress: Callable[[], None] = lambda: None,
    stop: Callable[[], bool] = lambda: False,
) -> TuningSummary:
    """Run both steps for every pair not yet in `out`, appending one record per pair.

    `stop()` is asked after every record (edge_et.core.signals.graceful: Ctrl-C finishes the
    pair in flight); the statements already made for the rest of that chunk are dropped and
    made again by the next run, which skips every pair in `out`."""
    todo, summary = pending(pipeline, pairs, out, statement_role)
    chunk = max(1, chunk)
    with targets_file(out) as write:
        for start in range(0, len(todo), chunk):
            for record in _chunk(
                pipeline,
                todo[start : start + chunk],
                seed,
                statement_role,
                (statement_decoding, target_decoding),
                out.parent,
                summary,
            ):
                write(record)
                summary.written += 1
                progress()
                if stop():
                    break
            if stop():
                break
    summary.model_loads = pipeline.model_loads
    return summary


@contextmanager
def targets_file(out: Path) -> Iterator[Callable[[dict], None]]:
    """`write(record)` appending to `out`, each record flushed as soon as it is written, so
    every finished pair survives an interruption and the next run skips it (`done_ids`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as target:
        if _ends_torn(out):
            target.write("\n")  # a crash mid-line: the next record starts on a line of its own

        def write(record: dict) -> None:
            target.write(json.dumps(record, ensure_ascii=False) + "\n")
            target.flush()

        yield write


def _chunk(
    pipeline: Pipeline,
    group: list[QAPair],
    seed: int,
    role: str,
    decoding: tuple[StageDecoding, StageDecoding],
    folder: Path,
    summary: TuningSummary,
):
    """Step 1 for every pair of the chunk, then step 2: one model at a time under swap."""
    pictures = {}
    for pair in group:
        try:
            pictures[pair.id] = teacher_image(pair.image)
        except EdgeEtError as exc:  # before step 1: no teacher time spent on a broken picture
            summary.fail(pair, str(exc))
    usable = [pair for pair in group if pair.id in pictures]
    statements = [statement_for(pipeline, pair, seed, role, decoding[0]) for pair in usable]
    for pair, (statement, stats) in zip(usable, statements):
        yield target_record(
            pipeline, pair, pictures.pop(pair.id), statement, stats, seed, decoding[1], folder
        )


def statement_for(
    pipeline: Pipeline, pair: QAPair, seed: int, role: str, settings: StageDecoding
) -> tuple[str, dict]:
    """Step 1 for one pair: its cleaned statement and the stage's stats."""
    stats = StageStats()
    text = pipeline.ask(
        role,
        statement_request(pair.question, pair.answer),
        settings=settings,
        seed=item_seed(seed, pair.id),
        stats=stats,
    )
    # A teacher that writes nothing still leaves the fact in the target's request.
    fallback = f'The answer to "{" ".join(pair.question.split())}" is {pair.answer.strip()}.'
    return clean_statement(text) or fallback, stats.to_dict()


def target_record(
    pipeline: Pipeline,
    pair: QAPair,
    picture: LoadedImage,
    statement: str,
    statement_stats: dict,
    seed: int,
    settings: StageDecoding,
    folder: Path,
) -> dict:
    """Step 2 for one pair: the output line, with the description written from `picture`."""
    stats = StageStats()
    description = pipeline.ask(
        "perception",
        target_request(statement),
        image=picture,
        settings=settings,
        seed=item_seed(seed, pair.id) + 1,
        stats=stats,
    )
    return {
        "id": pair.id,
        "image": _relative(pair.image, folder),
        "question": pair.question,
        "answer": pair.answer,
        "statement": statement,
        "target": description.strip(),
        "teacher": pipeline.bundle.name,
        "stages": {"statement": statement_stats, "target": stats.to_dict()},
    }


def _ends_torn(path: Path) -> bool:
    """Whether the file's last line lacks its newline (an interrupted write)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def _relative(path: Path, folder: Path) -> str:
    """The image path as seen from the output file's folder (absolute if on another drive)."""
    try:
        return os.path.relpath(path.resolve(), folder.resolve())
    except ValueError:
        return str(path.resolve())
