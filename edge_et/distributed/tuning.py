"""`data extract-tuning … --ray`: the paper's two teacher steps as two actor pools.

Step 1 (statement: the teacher's LLM, or its VLM with `--statement-model perception`) and
step 2 (the description: the teacher's VLM with the picture at 512x512) each run in their own
pool, so both models stay loaded and the steps overlap across the cluster. The output file,
its resume by id, the prompts, seeds and records are edge_et.eval.extract_tuning's: a Ray run
writes what a local one writes, in input order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_et.core.decoding import StageDecoding
from edge_et.distributed.cluster import RaySettings, alive_nodes
from edge_et.distributed.dataset import ordered_dataset, results, through_pool
from edge_et.distributed.pictures import WorkerCannotRead, readable_here, worker_picture
from edge_et.distributed.rows import row
from edge_et.distributed.sizing import StagePool, plan_pools
from edge_et.distributed.workers import StageJob, StageWorker
from edge_et.errors import EdgeEtError, InputError
from edge_et.eval import extract_tuning as tuning
from edge_et.runtime.pipeline import Pipeline, RunOptions
from edge_et.runtime.plan import plan_bundle


@dataclass(frozen=True)
class TuningJob:
    """What both pools are built from: the stage job and the run's tuning settings."""

    stage: StageJob
    seed: int
    statement_role: str
    statement_decoding: StageDecoding
    target_decoding: StageDecoding
    folder: str  # the output file's folder: records name their picture relative to it

    def pipeline(self, role: str) -> Pipeline:
        return self.stage.pipeline(role)


def _pair(payload: dict) -> tuning.QAPair:
    data = payload["pair"]
    return tuning.QAPair(
        id=data["id"], image=Path(data["image"]), question=data["question"], answer=data["answer"]
    )


def _checked_picture(entry: dict, payload: dict, path: Path):
    """The teacher's view of the picture; a bad one marks the pair failed (retried next run,
    as locally), a worker that cannot read it marks the run's stop."""
    try:
        return worker_picture(entry, payload, path, prepare=tuning.teacher_view)
    except WorkerCannotRead as exc:
        payload["unreadable"] = str(exc)
    except EdgeEtError as exc:
        payload["failed"] = str(exc)
    return None


class StatementWorker(StageWorker):
    """Step 1. The picture is checked first, so no teacher time goes to a broken one."""

    keeps_picture = True

    def __init__(self, job: TuningJob):
        self.role = job.statement_role
        super().__init__(job)

    def answer(self, entry: dict, payload: dict) -> None:
        pair = _pair(payload)
        if _checked_picture(entry, payload, pair.image) is None:
            return
        payload["statement"], payload["statement_stats"] = tuning.statement_for(
            self.pipeline, pair, self.job.seed, self.role, self.job.statement_decoding
        )
        payload["workers"] = [self.name]


class TargetWorker(StageWorker):
    """Step 2: the record a local run writes for the pair."""

    role = "perception"

    def answer(self, entry: dict, payload: dict) -> None:
        if "statement" not in payload:
            return
        pair = _pair(payload)
        picture = _checked_picture(entry, payload, pair.image)
        if picture is None:
            return
        payload["record"] = tuning.target_record(
            self.pipeline,
            pair,
            picture,
            payload["statement"],
            payload["statement_stats"],
            self.job.seed,
            self.job.target_decoding,
            Path(self.job.folder),
        )
        payload["workers"].append(self.name)


def make_targets_on_ray(
    pipeline: Pipeline,
    pairs: list[tuning.QAPair],
    out: Path,
    settings: RaySettings,
    *,
    threads: int | None = None,
    seed: int = 0,
    statement_role: str = "reasoning",
    statement_decoding: StageDecoding = tuning.STATEMENT_DECODING,
    target_decoding: StageDecoding = tuning.TARGET_DECODING,
    progress: Callable[[], None] = lambda: None,
    on_pools: Callable[[list[StagePool]], None] = lambda pools: None,
    stop: Callable[[], bool] = lambda: False,
) -> tuning.TuningSummary:
    """`make_targets` with the two steps on Ray; `pipeline` (the driver's) loads nothing."""
    todo, summary = tuning.pending(pipeline, pairs, out, statement_role)
    if not todo:
        return summary
    plan = pipeline.plan or plan_bundle(pipeline.bundle)
    # --ray-reasoning-actors sizes step 1 whichever model writes the statements, and
    # --ray-perception-actors step 2: with the VLM on both, two pools of the same model.
    pools = plan_pools(
        plan,
        [statement_role, "perception"],
        threads,
        settings,
        alive_nodes(),
        flags=["reasoning", "perception"],
    )
    on_pools(pools)
    job = TuningJob(
        StageJob(str(pipeline.bundle.path), pipeline.plan, pools[0].threads, RunOptions()),
        seed,
        statement_role,
        statement_decoding,
        target_decoding,
        str(out.parent),
    )
    dataset = ordered_dataset([_row(i, pair) for i, pair in enumerate(todo)], settings)
    dataset = through_pool(dataset, StatementWorker, pools[0], job)
    dataset = through_pool(dataset, TargetWorker, pools[1], job)
    workers: set[str] = set()
    with tuning.targets_file(out) as write:
        for index, payload in results(dataset, stop):
            if payload.get("unreadable"):
                raise InputError(payload["unreadable"])
            if "record" in payload:
                write(payload["record"])
                summary.written += 1
                workers.update(payload["workers"])
            else:
                summary.fail(todo[index], payload.get("failed", "no record"))
            progress()
    summary.model_loads = len(workers)
    return summary


def _row(index: int, pair: tuning.QAPair) -> dict:
    return row(
        index,
        {
            "pair": {
                "id": pair.id,
                "image": str(pair.image),
                "question": pair.question,
                "answer": pair.answer,
            },
            "image": str(pair.image),
            "driver_reads": readable_here(pair.image),
        },
    )
