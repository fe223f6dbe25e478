"""One bundle's slots, its bounded queue and stage grouping.

Each slot is one `Pipeline` with a thread of its own: `--parallel N` runs N requests at once,
and a running request is never cancelled because another arrived (a new one waits in the
queue; a full queue is a 503 with Retry-After). Under swap residency a slot takes every waiting
request at once and runs all their perceptions, frees the perception model, then runs all
their reasoning, as `run --batch` does: a model loads once per group, not once per request.
The models are borrowed from the server's pool (pool.py) and given back after each group; the
pool decides what stays loaded and unloads what sits idle for the keep-alive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import edge_et
from edge_et.serve.failures import ApiError, from_edge_et
from edge_et.serve.jobs import Cancelled, ExtractionCache, Job, perceive, reason
from edge_et.serve.metrics import Metrics

log = logging.getLogger("edge_et.serve")
GROUP_LIMIT = 16  # requests one swap group takes: bounds the wait of the group's first one


class QueueFull(Exception):
    pass


class Scheduler:
    def __init__(
        self,
        pipelines: list[edge_et.Pipeline],
        *,
        max_queue: int,
        metrics: Metrics,
        extraction_cache_entries: int = 4096,
        group: bool = False,
        check: Callable[[Job], None] = lambda job: None,
        name: str = "",
    ):
        self.pipelines = pipelines
        self.max_queue = max_queue
        self.metrics = metrics
        self.group = group  # swap residency: run waiting requests stage by stage
        self._check = check  # refuses a job before it is queued (raises ApiError)
        self.cache = ExtractionCache(extraction_cache_entries)
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._busy = 0
        self._stopping = False
        self._threads = [
            threading.Thread(
                target=self._slot, args=(pipeline,), daemon=True, name=f"edge-et-slot-{name}-{i}"
            )
            for i, pipeline in enumerate(pipelines)
        ]
        for thread in self._threads:
            thread.start()

    # -- what the routes and metrics see --------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue `job`; QueueFull when it would have to wait and `max_queue` jobs already
        wait. A job that an idle slot takes at once never waits: `--max-queue 0` means no
        waiting, not no service."""
        self._check(job)
        with self._cond:
            idle = len(self.pipelines) - self._busy
            if len(self._waiting) + 1 - idle > self.max_queue:
                raise QueueFull
            self._waiting.append(job)
            self._cond.notify()

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> int:
        return self._busy

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            for job in self._waiting:
                job.cancelled.set()
            self._waiting.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        for pipeline in self.pipelines:
            pipeline.close()

    # -- a slot's thread ------------------------------------------------------------------

    def _slot(self, pipeline: edge_et.Pipeline) -> None:
        while True:
            jobs = self._next_jobs(pipeline)
            if jobs is None:
                return
            try:
                self._run_group(pipeline, jobs)
            finally:
                pipeline.close()  # the models go back to the pool, which keeps them loaded
                with self._cond:
                    self._busy -= 1

    def _next_jobs(self, pipeline: edge_et.Pipeline) -> list[Job] | None:
        """Wait for work; None when the server stops."""
        with self._cond:
            while not self._waiting and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            take = GROUP_LIMIT if self.group else 1
            jobs = [self._waiting.popleft() for _ in range(min(take, len(self._waiting)))]
            self._busy += 1
            return jobs

    def _run_group(self, pipeline: edge_et.Pipeline, jobs: list[Job]) -> None:
        """Every job's perception, then (freeing perception first under swap) its reasoning."""
        for job in jobs:
            job.started_at = time.perf_counter()
            self.metrics.queue_wait.observe(job.started_at - job.queued_at)
            self._attempt(job, lambda job=job: perceive(pipeline, job, self.cache, self._piece))
        thinking = [job for job in jobs if job.error is None and job.needs_reasoning]
        if thinking and self.group:
            pipeline.release("perception")  # its memory returns before the reasoner loads
        for job in thinking:
            self._attempt(job, lambda job=job: reason(pipeline, job, self._piece))
        for job in jobs:
            self._finish(job)

    def _attempt(self, job: Job, work) -> None:
        if job.error is not None:
            return
        if job.cancelled.is_set():  # the client left while it waited: nothing to run
            job.error = Cancelled()
            return
        try:
            work()
        except Cancelled as stop:
            job.error = stop
        except edge_et.EdgeEtError as error:
            job.error = from_edge_et(error)
        except Exception as error:
            log.exception("run failed")
            job.error = ApiError(500, f"internal error: {type(error).__name__}")

    def _finish(self, job: Job) -> None:
        if isinstance(job.error, Cancelled) or job.cancelled.is_set():
            self.metrics.cancelled.inc()
            self.metrics.completions.labels("cancelled").inc()
        elif job.error is not None:
            self.metrics.completions.labels("error").inc()
            job.deliver(("error", job.error))
        else:
            self.metrics.completions.labels("ok").inc()
            self.metrics.latency.observe(time.perf_counter() - job.queued_at)
            self.metrics.record(job.result, job.extraction_cached)
            job.deliver(("done", job.result))

    def _piece(self, stage: str) -> None:
        self.metrics.pieces.labels(stage).inc()
