"""`run --batch … --ray` and `eval … --ray`: the lines answered by actor pools on a Ray cluster.

`RayRunner` has run_batch's signature, so `BatchRun` (results journal, resume file) and
`EvalRun` (predictions journal, scores) drive it exactly as they drive the local run; only
where the lines are answered changes. With a seed the records equal a local run's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from edge_et.core.stats import Result
from edge_et.distributed.cluster import RaySettings, alive_nodes
from edge_et.distributed.dataset import ordered_dataset, results, through_pool
from edge_et.distributed.pictures import readable_here
from edge_et.distributed.rows import item_to_dict, row
from edge_et.distributed.sizing import StagePool, plan_pools
from edge_et.distributed.workers import PerceptionWorker, ReasoningWorker, StageJob
from edge_et.errors import InputError
from edge_et.runtime.batch import BatchItem, BatchSummary, Resumed, Writer, line_record
from edge_et.runtime.pipeline import Pipeline, RunOptions
from edge_et.runtime.plan import plan_bundle

WORKERS = {"perception": PerceptionWorker, "reasoning": ReasoningWorker}


class RayRunner:
    """Answers batch lines on Ray; call it as `run_batch` is called.

    `pipeline` is the driver's: its bundle and memory plan size the actors, and it loads
    nothing here. `on_pools(pools)` hears each run's actor pools before it starts.
    """

    def __init__(
        self,
        settings: RaySettings,
        threads: int | None = None,
        on_pools: Callable[[list[StagePool]], None] = lambda pools: None,
    ):
        self.settings, self.threads, self.on_pools = settings, threads, on_pools

    def __call__(
        self,
        pipeline: Pipeline,
        items: list[BatchItem],
        options: RunOptions,
        write: Writer,
        progress: Callable[[], None] = lambda: None,
        *,
        resumed: Resumed | None = None,
        on_extracted=None,
        stop: Callable[[], bool] = lambda: False,
        forget_used_pictures: bool = True,
    ) -> BatchSummary:
        started = time.perf_counter()
        resumed = resumed or Resumed()
        todo = [item for item in items if item.index not in resumed.done]
        summary = BatchSummary(lines=len(items), resumed=len(items) - len(todo), residency="ray")
        workers: set[str] = set()
        written = 0
        if todo:
            by_index = {item.index: item for item in todo}
            for index, payload in results(self._dataset(pipeline, todo, options, resumed), stop):
                if payload.get("unreadable"):
                    raise InputError(payload["unreadable"])
                outcome = payload["outcome"]
                record = line_record(
                    by_index[index],
                    outcome["error"] if "error" in outcome else Result.from_dict(outcome),
                )
                summary.errors += "error" in record
                write(record)
                written += 1
                workers.update(payload.get("workers", []))
                progress()
        summary.left = len(todo) - written
        summary.answered = written - summary.errors
        summary.model_loads = len(workers)  # each actor that answered loaded its model once
        pipeline.model_loads += len(workers)  # what the run cost, for reports that read it there
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _dataset(
        self, pipeline: Pipeline, todo: list[BatchItem], options: RunOptions, resumed: Resumed
    ):
        roles = ["perception", "reasoning"] if options.mode.endswith("-think") else ["perception"]
        plan = pipeline.plan or plan_bundle(pipeline.bundle)  # a Pipeline built without one
        pools = plan_pools(plan, roles, self.threads, self.settings, alive_nodes())
        self.on_pools(pools)
        job = StageJob(
            bundle=str(pipeline.bundle.path),
            plan=pipeline.plan,
            threads=pools[0].threads,
            options=options,
        )
        dataset = ordered_dataset([_row(item, resumed) for item in todo], self.settings)
        for pool in pools:
            dataset = through_pool(dataset, WORKERS[pool.role], pool, job)
        return dataset


def _row(item: BatchItem, resumed: Resumed) -> dict:
    saved = resumed.extracted.get(item.index)
    looks = item.image is not None and not item.error and saved is None
    return row(
        item.index,
        {
            "item": item_to_dict(item),
            "saved": saved,
            "image": str(item.image) if looks else None,
            "driver_reads": readable_here(item.image),
        },
    )
