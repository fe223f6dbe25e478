"""Multiple-choice visual QA over a JSONL file, in one or several modes: `edge-et eval`.

The data format is MMStar-like, one object per line:

    {"image": "img/1.png", "question": "What is left of the square?",
     "options": {"A": "circle", "B": "star", "C": "tree", "D": "car"}, "answer": "A",
     "category": "position", "id": "q1"}

`image` is relative to the JSONL file's folder (or absolute); `category` and `id` are
optional; `options` may also be a list (lettered A, B, ... in order), with 2 to 26 entries.
The pipeline is asked the question as MMStar poses it: the question, then one line per
option, `A. circle`. Each question gets its own seed (from the run's seed and the item's
id), the same in every mode, so modes are compared on the same draws and a rerun repeats.

Runs go through the batch machinery (edge_et.runtime.batch): one pipeline for every mode, so with
co-resident models each loads once; with swap residency each mode runs all its extractions
before its reasoning. Modes without a reasoning stage run first, while the perception
model is the one in memory.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge_et.core.jsonl import json_object, local_path, parse_lines
from edge_et.errors import InputError
from edge_et.eval.metrics import (
    LETTERS,
    NO_CATEGORY,
    Accuracy,
    Scored,
    accuracy,
    answer_letter,
    by_category,
    stage_medians,
    stage_seconds,
)
from edge_et.runtime.batch import BatchItem, BatchRunner, Resumed, run_batch
from edge_et.runtime.pipeline import MODES, Pipeline, RunOptions, check_mode

EVAL_MODES = tuple(mode for mode in MODES if mode != "extract")  # extract gives no answer


@dataclass
class EvalItem:
    """One usable line of the data file."""

    line: int  # 1-based line number in the file
    id: object
    image: Path
    question: str  # the question stem, without options
    options: dict[str, str]  # letter -> option text, A, B, ... in order
    answer: str  # the correct letter
    category: str = NO_CATEGORY

    @property
    def prompt(self) -> str:
        """The question as the pipeline gets it: the stem, then `A. text` lines."""
        return format_question(self.question, self.options)

    def seed(self, base: int) -> int:
        """A seed of this item's own: stable across runs, --limit and mode order."""
        key = self.id if self.id is not None else f"line-{self.line}"
        return zlib.crc32(f"{base}:{key}".encode()) & 0x7FFFFFFF


def format_question(stem: str, options: dict[str, str]) -> str:
    """The stem, then one line per option: `A. circle` (the form hints.py and MMStar use)."""
    return stem.strip() + "".join(f"\n{letter}. {text}" for letter, text in options.items())


@dataclass
class EvalData:
    """The usable items of a file and a one-line reason for every line that was not usable."""

    path: Path
    items: list[EvalItem]
    errors: list[str] = field(default_factory=list)


def read_eval_file(path: Path, limit: int | None = None) -> EvalData:
    """Parse the data file; bad lines are collected as errors, never raised.

    `limit` keeps the first `limit` usable items (bad lines before them are still reported).
    Raises InputError when the file cannot be read or holds no usable line.
    """
    items, errors = parse_lines(path, parse_eval_item, what="questions", limit=limit)
    return EvalData(path=Path(path), items=items, errors=errors)


def parse_eval_line(number: int, line: str, folder: Path) -> EvalItem:
    """One line of the data file; ValueError with a short reason when it is unusable."""
    return parse_eval_item(number, json_object(line), folder)


def parse_eval_item(number: int, raw: dict, folder: Path) -> EvalItem:
    """One decoded line of the data file; ValueError with a short reason when it is unusable."""
    for key in ("image", "question"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ValueError(f"needs a non-empty string '{key}'")
    options = _options(raw.get("options"))
    answer = raw.get("answer")
    if not isinstance(answer, str) or answer.strip().upper() not in options:
        raise ValueError(
            f"'answer' must be one of the option letters {', '.join(options)}, got {answer!r}"
        )
    category = raw.get("category")
    return EvalItem(
        line=number,
        id=raw.get("id"),
        image=local_path(raw["image"], folder),
        question=raw["question"],
        options=options,
        answer=answer.strip().upper(),
        category=str(category) if category not in (None, "") else NO_CATEGORY,
    )


def _options(raw) -> dict[str, str]:
    if isinstance(raw, list):
        raw = dict(zip(LETTERS, raw))
    if not isinstance(raw, dict) or not 2 <= len(raw) <= len(LETTERS):
        raise ValueError("'options' must map 2 to 26 letters (A, B, ...) to option texts")
    letters = [str(key).strip().upper() for key in raw]
    if letters != list(LETTERS[: len(letters)]):
        got = ", ".join(repr(letter) for letter in letters)  # repr: a key may hold a newline
        raise ValueError(f"option letters must be A, B, ... in order, got {got}")
    texts = [
        str(value).strip() if isinstance(value, (str, int, float)) else "" for value in raw.values()
    ]
    if not all(texts):
        raise ValueError("every option needs a non-empty text")
    return dict(zip(letters, texts))


# -- running ------------------------------------------------------------------------------


@dataclass
class ModeReport:
    """What one mode scored: overall, per category, latency, and what it cost to run."""

    mode: str
    rows: list[Scored]
    seconds: float = 0.0
    model_loads: int = 0

    @property
    def overall(self) -> Accuracy:
        return accuracy(self.rows)

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            **self.overall.to_dict(),
            "categories": {name: acc.to_dict() for name, acc in by_category(self.rows).items()},
            "median_s": stage_medians(self.rows),
            "seconds": round(self.seconds, 3),
            "model_loads": self.model_loads,
            "errors_seen": sorted({row.error for row in self.rows if row.error})[:5],
        }


@dataclass
class EvalReport:
    """Every mode's report over the same items."""

    data: EvalData
    bundle: str
    seed: int
    modes: dict[str, ModeReport]

    def to_dict(self) -> dict:
        return {
            "data": str(self.data.path),
            "bundle": self.bundle,
            "seed": self.seed,
            "questions": len(self.data.items),
            "data_errors": len(self.data.errors),
            "data_error_lines": self.data.errors[:20],
            "modes": {name: report.to_dict() for name, report in self.modes.items()},
        }


Record = Callable[[str, EvalItem, dict, Scored], None]


def check_eval_modes(modes: list[str]) -> list[str]:
    """The modes in the caller's order, duplicates dropped; InputError for an unusable one."""
    chosen = list(dict.fromkeys(modes or ["extract-think"]))
    for mode in chosen:
        if check_mode(mode) not in EVAL_MODES:
            raise InputError(
                f"mode {mode!r} gives no answer to score; choose from: {', '.join(EVAL_MODES)}"
            )
    return chosen


@dataclass
class Earlier:
    """What an interrupted evaluation left, by (mode, data file line): scored prediction rows
    (not asked again) and saved extractions (their reasoning is still to run)."""

    rows: dict[tuple[str, int], dict] = field(default_factory=dict)
    extractions: dict[tuple[str, int], dict] = field(default_factory=dict)


Extracted = Callable[[str, EvalItem, dict], None]


def evaluate(
    pipeline: Pipeline,
    data: EvalData,
    modes: list[str],
    options: RunOptions,
    *,
    seed: int = 0,
    progress: Callable[[], None] = lambda: None,
    on_record: Record | None = None,
    earlier: Earlier | None = None,
    on_extracted: Extracted | None = None,
    stop: Callable[[], bool] = lambda: False,
    runner: BatchRunner = run_batch,
) -> EvalReport:
    """Ask every item in every mode on one pipeline and score the answers.

    `progress` is called once per (mode, item) asked; `on_record(mode, item, record, scored)`
    sees each batch record (edge_et.runtime.batch) with its score, e.g. to save predictions.
    `earlier` rows are scored without asking again; `on_extracted(mode, item, saved)` sees each
    extraction of a staged run as it finishes; `stop()` True ends the run after the item in flight.
    `runner` answers each mode's lines (run_batch's signature; edge_et.distributed's uses Ray).
    """
    chosen = check_eval_modes(modes)
    earlier = earlier or Earlier()
    reports = {}
    order = sorted(chosen, key=lambda m: m.endswith("-think"))  # perception-only first
    for mode in order:
        if stop():
            break
        reports[mode] = _run_mode(
            pipeline,
            data.items,
            mode,
            options,
            seed,
            progress,
            on_record,
            earlier,
            on_extracted,
            stop,
            runner,
            last=mode == order[-1],
        )
    return EvalReport(
        data=data,
        bundle=pipeline.bundle.name,
        seed=seed,
        modes={mode: reports[mode] for mode in chosen if mode in reports},
    )


def _run_mode(
    pipeline: Pipeline,
    items: list[EvalItem],
    mode: str,
    options: RunOptions,
    seed: int,
    progress,
    on_record: Record | None,
    earlier: Earlier,
    on_extracted: Extracted | None,
    stop,
    runner: BatchRunner,
    last: bool,
) -> ModeReport:
    batch = [
        BatchItem(index=i, image=item.image, question=item.prompt, id=item.id, seed=item.seed(seed))
        for i, item in enumerate(items)
    ]
    done = {i for i, item in enumerate(items) if (mode, item.line) in earlier.rows}
    rows = [score_record(items[i], earlier.rows[(mode, items[i].line)]) for i in sorted(done)]
    resumed = Resumed(
        done=done,
        extracted={
            i: earlier.extractions[(mode, item.line)]
            for i, item in enumerate(items)
            if (mode, item.line) in earlier.extractions
        },
    )
    loads_before, started = pipeline.model_loads, time.perf_counter()

    def write(record: dict) -> None:
        item = items[record["index"]]
        rows.append(score_record(item, record))
        if on_record is not None:
            on_record(mode, item, record, rows[-1])

    def extracted(index: int, saved: dict) -> None:
        if on_extracted is not None:
            on_extracted(mode, items[index], saved)

    runner(
        pipeline,
        batch,
        replace(options, mode=mode),
        write,
        progress,
        resumed=resumed,
        on_extracted=extracted,
        stop=stop,
        forget_used_pictures=last,
    )  # the next mode shows the same pictures
    return ModeReport(
        mode=mode,
        rows=rows,
        seconds=time.perf_counter() - started,
        model_loads=pipeline.model_loads - loads_before,
    )


def prediction_row(mode: str, item: EvalItem, record: dict, scored: Scored) -> dict:
    """One line of `--predictions`: the item, its score and the batch record's fields."""
    return {
        "mode": mode,
        "line": item.line,
        "id": item.id,
        "category": item.category,
        "gold": item.answer,
        "letter": scored.letter,
        "correct": scored.correct,
    } | {k: v for k, v in record.items() if k not in ("index", "id", "mode")}


def score_record(item: EvalItem, record: dict) -> Scored:
    """A batch record (a Result's fields, or an error) scored against the item's answer."""
    common = dict(id=item.id, category=item.category, gold=item.answer, n_options=len(item.options))
    if "error" in record:
        return Scored(**common, error=record["error"])
    return Scored(
        **common,
        letter=answer_letter(record.get("answer", ""), "".join(item.options), item.options),
        stage_s=stage_seconds(record.get("stages", {})),
    )
