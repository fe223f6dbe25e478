"""One request as a job for a slot: its stages, its events, its cancellation.

A job runs in a slot's thread through the pipeline's public stages (`perceive`, then `reason`
for the -think modes), so a scheduler can run all waiting perceptions before any reasoning.
Text and stage events go to the request's coroutine through `deliver`. When the client leaves,
`cancelled` is set and the next text callback raises `Cancelled` inside the generation loop:
generation stops at its next token.

A conversation's earlier turns become the reasoner's history in the slot's thread, before the
current turn's perception: each earlier turn's extraction comes from the message that carries
it, else from the cache, else from the perception model (whose embedding cache keeps the
picture from being encoded again).

The extraction cache holds perception text by (pixel hash, stage, hint, detail): the same
picture with the same hint skips the perception model entirely. Perception decodes greedily by default, so
the cached text is the text it would write again. Where the perception text is the reply
(`extract`), the request's stop strings cut it: a cut text is not cached, and a cached one is
cut as generation would have cut it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import edge_et
from edge_et.runtime.chat import UserTurn, history_of
from edge_et.runtime.stop_strings import check_stops, cut_at_stop

EXTRACTION_CACHE_ENTRIES = 4096  # text only: a few MB at most


class Cancelled(BaseException):
    """Raised in a slot's thread when the client left. A BaseException, so that no `except
    Exception` on the way turns the stop into an error."""


@dataclass
class Job:
    picture: edge_et.LoadedImage | None  # None: a text-only turn (mode chat)
    question: str
    options: edge_et.RunOptions  # seed already chosen; no callbacks
    deliver: Callable[[tuple], None]  # thread-safe: hands an event to the request
    system: str | None = None
    earlier: list[UserTurn] = field(default_factory=list)  # the conversation's earlier turns
    cancelled: threading.Event = field(default_factory=threading.Event)
    queued_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None
    extraction_cached: bool = False
    cached_stop: str | None = None  # how the cached extraction's generation ended
    result: edge_et.Result | None = None
    error: BaseException | None = None

    @property
    def needs_reasoning(self) -> bool:
        return self.options.mode == "chat" or self.options.mode.endswith("-think")

    def emit(self, *event) -> None:
        if self.cancelled.is_set():
            raise Cancelled
        self.deliver(event)

    def hooked_options(self, on_piece: Callable[[str], None]) -> edge_et.RunOptions:
        """The options with callbacks that stream this job's events (and count pieces)."""

        def extraction(text: str) -> None:
            on_piece("perception")
            self.emit("extraction", text)

        def reasoning(text: str) -> None:
            on_piece("reasoning")
            self.emit("reasoning", text)

        return replace(
            self.options,
            on_extraction_text=extraction,
            on_reasoning_text=reasoning,
            on_stage_finished=lambda stage, stats: self.emit("stage", stage, stats),
        )


class ExtractionCache:
    """Perception text and how its generation ended, by (pixel hash, stage, hint), least
    recently used dropped first."""

    def __init__(self, entries: int = EXTRACTION_CACHE_ENTRIES):
        self._entries = entries
        self._items: OrderedDict[tuple, tuple[str, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(job: Job) -> tuple | None:
        """None where the text cannot be reused: direct mode answers the question itself, an
        `auto` hint is the reasoning model's own choice, a constrained extraction is JSON."""
        mode, hint = job.options.mode, job.options.hint
        if (
            job.picture is None
            or mode == "direct"
            or (hint is not None and hint.strip().lower() == "auto")
        ):
            return None
        if mode == "extract" and job.options.constraint is not None:  # JSON, not a description
            return None
        return ExtractionCache.key_of(
            job.picture, job.question, mode, hint, job.options.image_detail
        )

    @staticmethod
    def key_of(
        picture: edge_et.LoadedImage, question: str, mode: str, hint: str | None, detail: str
    ) -> tuple:
        detail = "low" if detail == "low" else "high"  # auto is the bundle's default: high
        if mode == "caption-think":
            return picture.sha256, "caption", "", detail
        if hint is not None and hint.strip():
            return picture.sha256, "extract", hint.strip(), detail
        return picture.sha256, "extract", edge_et.hint_from_question(question), detail

    def get(self, key: tuple | None) -> tuple[str, str | None] | None:
        """(text, stop reason), or None."""
        if key is None:
            return None
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: tuple | None, text: str, stop_reason: str | None) -> None:
        if key is None:
            return
        with self._lock:
            self._items[key] = (text, stop_reason)
            self._items.move_to_end(key)
            while len(self._items) > self._entries:
                self._items.popitem(last=False)


def perceive(
    pipeline: edge_et.Pipeline, job: Job, cache: ExtractionCache, on_piece: Callable[[str], None]
) -> None:
    """Stage 1 of `job` into `job.result`, from the extraction cache when it holds the text
    (a conversation's earlier turns first become its history)."""
    if job.system or job.earlier:
        history = history_of(job.system, job.earlier, _cached_extractor(pipeline, job, cache))
        job.options = replace(job.options, history=history)
    key = cache.key(job)
    cached = cache.get(key)
    if cached is None:
        job.result = pipeline.perceive(job.picture, job.question, job.hooked_options(on_piece))
        stats = job.result.stages.get(key[1]) if key else None
        if not (stats and stats.stop_reason == "stop_string"):
            cache.put(key, job.result.extraction, stats.stop_reason if stats else None)
        return
    cached, job.cached_stop = cached
    if job.options.mode == "extract":
        cut, stopped = cut_at_stop(cached, check_stops(job.options.stop))
        if stopped:
            cached, job.cached_stop = cut.strip(), "stop_string"
    job.extraction_cached = True
    hint, source = _cached_hint(job, key)
    job.result = edge_et.Result(
        mode=job.options.mode,
        question=job.question,
        hint=hint,
        hint_source=source,
        extraction=cached,
        seed=job.options.seed,
        image=job.picture.source,
        image_detail=key[3],
    )
    if cached:
        job.emit("extraction", cached)


def _cached_extractor(pipeline: edge_et.Pipeline, job: Job, cache: ExtractionCache):
    """extract(picture, question) for an earlier turn, through the extraction cache."""

    def extract(picture: edge_et.LoadedImage, question: str) -> str:
        key = ExtractionCache.key_of(
            picture, question, "extract-think", None, job.options.image_detail
        )
        cached = cache.get(key)
        if cached is not None:
            return cached[0]
        if job.cancelled.is_set():
            raise Cancelled
        options = edge_et.RunOptions(
            mode="extract", seed=job.options.seed, image_detail=job.options.image_detail
        )
        result = pipeline.perceive(picture, question, options)
        cache.put(key, result.extraction, result.stages["extract"].stop_reason)
        return result.extraction

    return extract


def reason(pipeline: edge_et.Pipeline, job: Job, on_piece: Callable[[str], None]) -> None:
    """Stage 2 of a -think job whose stage 1 is done."""
    pipeline.reason(job.result, job.hooked_options(on_piece))


def _cached_hint(job: Job, key: tuple) -> tuple[str | None, str | None]:
    if key[1] == "caption":
        return None, None
    return key[2], "flag" if job.options.hint else "question-rule"
