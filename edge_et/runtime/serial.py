"""One request at a time on a pipeline's models, from any number of threads.

A llama.cpp context (and an ONNX Runtime decoder with its KV buffers) holds the state of one
generation: two threads stepping it at once corrupt memory. So every public call that touches
a pipeline's models holds the pipeline's lock; a call from another thread waits for it, or with
`wait=False` is refused at once. The lock is re-entrant, so a call may make the others
(`run` calls `perceive` and `reason`) in the same thread.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from edge_et.errors import PipelineBusy

Method = TypeVar("Method", bound=Callable)


class ModelLock:
    """Serializes the calls on one pipeline's models."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    @contextmanager
    def held(self, *, wait: bool = True) -> Iterator[None]:
        """Hold the lock for the block; PipelineBusy when `wait` is False and another thread has it."""
        if not self._lock.acquire(blocking=wait):
            raise PipelineBusy(
                "the pipeline is running another request; wait for it "
                "(wait=True) or open another pipeline"
            )
        try:
            yield
        finally:
            self._lock.release()


def serialized(method: Method) -> Method:
    """Run `method` while holding its object's `model_lock`."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self.model_lock.held():
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]
