"""Many questions in one run: a JSONL file in, one JSON result per line out, in input order.

Each input line is `{"image": PATH, "question": TEXT}` (optional `id`, `hint`, `seed`); relative
image paths are read from the JSONL file's folder. A bad line becomes an error record for
that line; the batch goes on.

With swap residency every extraction runs first, then every reasoning step, so each model
loads once however many questions there are. A picture used by several lines is decoded
once (kept until its last line) and encoded once (the backend's embedding cache).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge_et.core.images import LoadedImage, load_image
from edge_et.core.jsonl import local_path, read_lines
from edge_et.core.paths import shown
from edge_et.core.stats import Result
from edge_et.errors import EdgeEtError, InputError, ModelLoadError
from edge_et.runtime.pipeline import Pipeline, RunOptions

Writer = Callable[[dict], None]
# run_batch's signature: evaluations and resumable runs take another runner (edge_et.distributed
# answers the lines on a Ray cluster) and keep their output, resume and journal code.
BatchRunner = Callable[..., "BatchSummary"]


@dataclass
class BatchItem:
    """One input line; `error` is set when the line itself is unusable."""

    index: int
    image: Path | None = None
    question: str = ""
    id: object = None
    hint: str | None = None
    seed: int | None = None  # this line's own sampling seed (evaluations seed each item)
    error: str | None = None


@dataclass
class BatchSummary:
    """Counts that show the batch's cost: model loads and image encodes."""

    lines: int = 0
    answered: int = 0
    errors: int = 0
    model_loads: int = 0
    image_encodes: int = 0
    distinct_images: int = 0
    images_decoded: int = 0
    seconds: float = 0.0
    residency: str = ""
    resumed: int = 0  # lines an earlier run had answered (skipped)
    left: int = 0  # lines not answered because the run was stopped


def read_batch(path: Path) -> list[BatchItem]:
    """Parse the JSONL file; unreadable lines become items that carry their error."""
    lines = read_lines(path, "batch file")
    items = [
        _parse_line(i, line, Path(path).parent) for i, line in enumerate(lines) if line.strip()
    ]
    if not items:
        raise InputError(f"batch file '{shown(path)}' has no lines")
    for position, item in enumerate(items):
        item.index = position
    return items


def _parse_line(number: int, line: str, folder: Path) -> BatchItem:
    item = BatchItem(index=number)
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        item.error = f"line {number + 1}: not valid JSON ({exc.msg})"
        return item
    if isinstance(data, dict):
        item.id = data.get("id")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("question"), str)
        or not isinstance(data.get("image"), str)
    ):
        item.error = f"line {number + 1}: needs string fields 'image' and 'question'"
        return item
    item.question = data["question"]
    item.hint = data.get("hint") if isinstance(data.get("hint"), str) else None
    item.seed = data["seed"] if type(data.get("seed")) is int else None
    try:
        item.image = local_path(data["image"], folder)
    except ValueError as exc:
        item.error = f"line {number + 1}: {exc}"
    return item


class _Pictures:
    """Decoded pictures, each kept only until the last line that uses it.

    After that line, `retire()` hands the picture to `on_last_use`, so the backend's embedding
    cache drops it too: over a long batch of distinct pictures the cache would otherwise fill
    to its limit with embeddings no later line asks for.
    """

    def __init__(
        self,
        items: list[BatchItem],
        on_last_use: Callable[[LoadedImage], None] = lambda picture: None,
    ):
        self._uses = Counter(
            item.image.resolve() for item in items if item.image and not item.error
        )
        self._loaded: dict[Path, LoadedImage] = {}
        self._used_up: list[LoadedImage] = []
        self._on_last_use = on_last_use
        self._readable: set[Path] = set()  # pictures that decoded (a missing file is no picture)
        self.decoded = 0

    def take(self, path: Path) -> LoadedImage:
        """The decoded picture at `path`; raises InputError for a bad file (that line fails)."""
        key = path.resolve()
        self._uses[key] -= 1  # counted before decoding, so a failed decode is still a use
        picture = self._loaded.pop(key, None)
        if picture is None:
            picture = load_image(path)
            self.decoded += 1
            self._readable.add(key)
        if self._uses[key] > 0:
            self._loaded[key] = picture
        else:
            self._used_up.append(picture)
        return picture

    def retire(self) -> None:
        """Call after each line: the pictures no later line uses leave every cache."""
        for picture in self._used_up:
            self._on_last_use(picture)
        self._used_up.clear()

    @property
    def distinct(self) -> int:
        """Distinct pictures the lines showed; a file that could not be read is not one."""
        return len(self._readable)


@dataclass
class Resumed:
    """What an earlier, interrupted run of the same batch left (see edge_et.core.resume).

    done: indices of the lines already answered (skipped now); extracted: index -> the saved
    extraction (a Result's dict, or {"error": ...}) of staged lines whose reasoning is missing.
    """

    done: set[int] = field(default_factory=set)
    extracted: dict[int, dict] = field(default_factory=dict)


def run_batch(
    pipeline: Pipeline,
    items: list[BatchItem],
    options: RunOptions,
    write: Writer,
    progress: Callable[[], None] = lambda: None,
    *,
    resumed: Resumed | None = None,
    on_extracted: Callable[[int, dict], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
    forget_used_pictures: bool = True,
) -> BatchSummary:
    """Answer every item not in `resumed.done`, writing one record per item in input order.

    Staged (swap) runs hand each extraction to `on_extracted(index, record)` as it finishes.
    `stop()` is asked between lines: True ends the batch after the line in flight
    (`summary.left` counts what is not written yet). `forget_used_pictures=False` keeps the
    pictures' embeddings cached after their last line (a caller that shows them again).
    """
    started = time.perf_counter()
    resumed = resumed or Resumed()
    todo = [item for item in items if item.index not in resumed.done]
    summary = BatchSummary(
        lines=len(items), resumed=len(items) - len(todo), residency=pipeline.residency
    )
    staged = pipeline.residency == "swap" and options.mode.endswith("-think")
    looking = [item for item in todo if not (staged and item.index in resumed.extracted)]
    pictures = _Pictures(looking, pipeline.forget_image if forget_used_pictures else lambda _: None)
    answers = (
        _staged(pipeline, todo, options, pictures, resumed.extracted, on_extracted, stop)
        if staged
        else _unstaged(pipeline, todo, options, pictures, stop)
    )
    written = 0
    for item, outcome in answers:
        record = line_record(item, outcome)
        summary.errors += "error" in record
        write(record)
        written += 1
        progress()
    summary.left = len(todo) - written
    summary.answered = written - summary.errors
    summary.model_loads, summary.image_encodes = pipeline.model_loads, pipeline.image_encodes
    summary.distinct_images, summary.images_decoded = pictures.distinct, pictures.decoded
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _unstaged(pipeline, items, options, pictures, stop):
    """Yield (item, Result or error text) in input order, each line run whole."""
    for item in items:
        if stop():
            return
        # attempt_line calls the work at once: binding `item` here only quiets the linter.
        outcome = attempt_line(
            lambda item=item: pipeline.run(
                pictures.take(item.image), item.question, line_options(options, item)
            ),
            item,
        )
        pictures.retire()
        yield item, outcome


def _staged(pipeline, items, options, pictures, extracted, on_extracted, stop):
    """Every extraction first (saved as it finishes), then every reasoning step, in input order."""
    perceived = []
    for item in items:
        if stop():
            return
        saved = extracted.get(item.index)
        if saved is None:
            outcome = attempt_line(
                lambda item=item: pipeline.perceive(
                    pictures.take(item.image), item.question, line_options(options, item)
                ),
                item,
            )
            pictures.retire()
            saved = outcome.to_dict() if isinstance(outcome, Result) else {"error": outcome}
            if on_extracted is not None:
                on_extracted(item.index, saved)
        perceived.append((item, saved["error"] if "error" in saved else Result.from_dict(saved)))
    pipeline.release("perception")  # its memory returns before the reasoning model loads
    for item, outcome in perceived:
        if stop():
            return
        if isinstance(outcome, Result):
            outcome = attempt_line(
                lambda item=item, outcome=outcome: pipeline.reason(
                    outcome, line_options(options, item)
                ),
                item,
            )
        yield item, outcome


def attempt_line(work: Callable[[], Result], item: BatchItem):
    """The line's Result, or its error text: one bad line never stops the batch (a Ray worker
    answers its lines through this too, edge_et.distributed)."""
    if item.error:
        return item.error
    try:
        return work()
    except ModelLoadError:
        raise  # not this line's fault: every later line would fail the same way
    except EdgeEtError as exc:
        return str(exc)


def line_options(options: RunOptions, item: BatchItem) -> RunOptions:
    own = {
        name: value
        for name, value in (("hint", item.hint), ("seed", item.seed))
        if value is not None
    }
    return replace(options, **own) if own else options


def line_record(item: BatchItem, outcome) -> dict:
    """The result line of `item`: its Result's fields, or its error with the line's input."""
    head = {"index": item.index, "id": item.id}
    if isinstance(outcome, Result):
        return head | outcome.to_dict()
    return head | {
        "error": outcome,
        "image": str(item.image) if item.image else None,
        "question": item.question,
    }
