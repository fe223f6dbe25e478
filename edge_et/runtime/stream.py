"""`Pipeline.stream`: one run as a sequence of typed events.

The run goes on in a worker thread through the pipeline's own callbacks (the generation code
is the one `run` uses); events cross to the caller through a queue. Closing the iterator
early makes the next callback raise inside the worker, which stops generation at its next
token; the iterator waits for the worker to end, so no thread outlives it. An error in the
run reaches the caller as the same exception object.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from edge_et.core.stats import Result, StageStats


@dataclass(frozen=True)
class ExtractionText:
    """A piece of the perception model's text (extraction, caption or direct answer)."""

    text: str


@dataclass(frozen=True)
class ReasoningText:
    """A piece of the reasoning model's text (thinking included)."""

    text: str


@dataclass(frozen=True)
class StageFinished:
    """A stage (`hint`, `extract`, `caption`, `direct`, `think`) ended; `stats` is what it cost."""

    stage: str
    stats: StageStats


@dataclass(frozen=True)
class Finished:
    """The run ended; `result` is what `Pipeline.run` would have returned."""

    result: Result


Event = ExtractionText | ReasoningText | StageFinished | Finished


class _Stopped(BaseException):
    """Raised in the worker when the consumer closed the stream. A BaseException, so that no
    `except Exception` on the way turns the stop into an error."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_DONE = object()


def stream_run(run: Callable[[Any], Result], options: Any) -> Iterator[Event]:
    """Call `run(options)` in a worker thread, yielding its events.

    `options` is a `RunOptions`; `run` receives a copy whose text and stage callbacks also
    feed the stream (a caller's own callbacks still run first).
    """
    events: queue.Queue = queue.Queue()
    stopped = threading.Event()

    def emit(event: Event) -> None:
        if stopped.is_set():
            raise _Stopped
        events.put(event)

    hooked = replace(
        options,
        on_extraction_text=_also(
            options.on_extraction_text, lambda text: emit(ExtractionText(text))
        ),
        on_reasoning_text=_also(options.on_reasoning_text, lambda text: emit(ReasoningText(text))),
        on_stage_finished=_also(
            options.on_stage_finished, lambda stage, stats: emit(StageFinished(stage, stats))
        ),
    )

    def work() -> None:
        try:
            events.put(Finished(run(hooked)))
        except _Stopped:
            pass
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, who re-raises it
            events.put(_Failed(error))
        finally:
            events.put(_DONE)

    return _consume(
        events, stopped, threading.Thread(target=work, name="edge-et-stream", daemon=True)
    )


def _consume(
    events: queue.Queue, stopped: threading.Event, worker: threading.Thread
) -> Iterator[Event]:
    worker.start()
    try:
        while (item := events.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stopped.set()
        worker.join()


def _also(first: Callable | None, then: Callable) -> Callable:
    """A callback that calls the caller's own one (if any), then `then`."""
    if first is None:
        return then

    def both(*args) -> None:
        first(*args)
        then(*args)

    return both
