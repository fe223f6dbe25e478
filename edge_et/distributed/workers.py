"""The actors of a batch run: perception, then reasoning, each loading its one model once.

Ray Data constructs each actor with the same `StageJob` and calls it with batches of rows
(edge_et.distributed.rows). A line is answered through the single-process batch code
(`attempt_line`, `line_options`), so its record, its error text and its seeds are the ones
a local run gives.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from edge_et.core.stats import Result
from edge_et.distributed.pictures import WorkerCannotRead, worker_picture
from edge_et.distributed.rows import batch_of, item_from_dict, payload_of, row, rows_of
from edge_et.memory.scheduler import Plan
from edge_et.runtime.api import open_bundle
from edge_et.runtime.batch import attempt_line, line_options
from edge_et.runtime.pipeline import Pipeline, RunOptions


@dataclass(frozen=True)
class StageJob:
    """What every actor of a run is built from (pickled to the workers): the bundle's path (the
    same on every node), the driver's memory plan, llama.cpp threads and the run's options."""

    bundle: str
    plan: Plan
    threads: int
    options: RunOptions
    device: str = "cpu"

    def pipeline(self, role: str) -> Pipeline:
        """A pipeline with the `role` model loaded now (each actor pays its load once)."""
        pipeline = Pipeline(
            open_bundle(self.bundle),
            n_threads=self.threads,
            plan=self.plan,
            device=self.device,
            residency="co-resident",
        )
        pipeline.load([role])
        return pipeline


def worker_name() -> str:
    """This actor process, as the driver counts model loads (a restarted actor is a new one)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class StageWorker:
    """An actor of one stage: `role`'s model loaded once, then `answer` for every row."""

    role = ""
    keeps_picture = False  # True: a later stage still needs the picture's bytes

    def __init__(self, job: StageJob):
        self.job = job
        self.pipeline = job.pipeline(self.role)
        self.name = worker_name()

    def __call__(self, batch: dict) -> dict:
        answered = []
        for entry in rows_of(batch):
            payload = payload_of(entry)
            self.answer(entry, payload)
            answered.append(
                row(
                    int(entry["index"]),
                    payload,
                    bytes(entry["picture"]) if self.keeps_picture else b"",
                )
            )
        return batch_of(answered)

    def answer(self, entry: dict, payload: dict) -> None:
        raise NotImplementedError


class PerceptionWorker(StageWorker):
    """Stage 1 of each line (the whole line for modes without reasoning); a line whose
    extraction an earlier run saved passes through."""

    role = "perception"

    def answer(self, entry: dict, payload: dict) -> None:
        if payload.get("saved") is not None:
            payload["outcome"] = payload.pop("saved")
            return
        item = item_from_dict(payload["item"])
        options = line_options(self.job.options, item)
        try:
            outcome = attempt_line(
                lambda: self.pipeline.perceive(
                    worker_picture(entry, payload, item.image), item.question, options
                ),
                item,
            )
        except WorkerCannotRead as exc:
            payload["unreadable"] = str(exc)
            outcome = str(exc)
        payload["outcome"] = (
            outcome.to_dict() if isinstance(outcome, Result) else {"error": outcome}
        )
        payload.setdefault("workers", []).append(self.name)


class ReasoningWorker(StageWorker):
    """Stage 2 of the -think modes, over the extraction stage 1 wrote."""

    role = "reasoning"

    def answer(self, entry: dict, payload: dict) -> None:
        outcome = payload["outcome"]
        if "error" in outcome:
            return
        item = item_from_dict(payload["item"])
        answered = attempt_line(
            lambda: self.pipeline.reason(
                Result.from_dict(outcome), line_options(self.job.options, item)
            ),
            item,
        )
        payload["outcome"] = (
            answered.to_dict() if isinstance(answered, Result) else {"error": answered}
        )
        payload.setdefault("workers", []).append(self.name)
