"""A batch file answered into a result file that survives crashes: `run --batch F --output O [--resume]`.

The output and the staged extractions are journals (whole lines, fsync'd every second);
`--resume` checks the input's sha256 and the settings (edge_et.core.resume), skips the lines
already answered, reuses the saved extractions and appends the rest. So a crash costs at most
the line in flight, and a resumed run writes the same lines an uninterrupted one would
(given a seed: each line's stages draw from seeds derived from it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from edge_et.core import resume as resume_files
from edge_et.core.journal import Journal
from edge_et.runtime.batch import BatchItem, BatchRunner, BatchSummary, Resumed, run_batch
from edge_et.runtime.pipeline import Pipeline, RunOptions

# Callbacks watch a run; they never change what it answers.
CALLBACKS = ("on_reasoning_text", "on_extraction_text", "on_stage_finished")


def run_settings(
    pipeline: Pipeline, options: RunOptions, *, leave_out: tuple[str, ...] = (), **extra
) -> dict:
    """What shapes the answers, for a resume to compare: the bundle, every option but the
    callbacks and `leave_out`, and `extra`. A resume with other values would mix two runs."""
    chosen = {
        item.name: getattr(options, item.name)
        for item in fields(RunOptions)
        if item.name not in (*CALLBACKS, *leave_out)
    }
    # `extra` last: eval's run seed must win over RunOptions.seed (unset there), or a changed
    # --seed would resume unnoticed.
    return {"bundle": str(pipeline.bundle.path), **chosen, **extra}


def answer_settings(pipeline: Pipeline, options: RunOptions) -> dict:
    """What shapes a batch's answers (`run --batch --resume` compares them)."""
    return run_settings(pipeline, options)


def resumed_from(point: resume_files.ResumePoint, items: list[BatchItem]) -> Resumed:
    """The lines an earlier run answered, and its saved extractions of the others."""
    done = {record["index"] for record in point.records if isinstance(record.get("index"), int)}
    extracted = {
        entry["index"]: entry["extraction"]
        for entry in point.extractions
        if isinstance(entry.get("index"), int) and isinstance(entry.get("extraction"), dict)
    }
    known = {item.index for item in items}
    return Resumed(done=done & known, extracted={i: e for i, e in extracted.items() if i in known})


class BatchRun:
    """`items` (read from the batch file `source`) to be answered into the journal `output`.

    Creating it checks (resume) or clears (fresh start) the earlier run's files, so
    `remaining` is known before anything runs, e.g. for a progress bar.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        source: Path,
        items: list[BatchItem],
        options: RunOptions,
        output: Path,
        *,
        resume: bool = False,
    ):
        self.pipeline, self.items, self.options, self.output = (
            pipeline,
            items,
            options,
            Path(output),
        )
        point = resume_files.prepare(
            output, source, answer_settings(pipeline, options), resume=resume
        )
        self.resumed = resumed_from(point, items)

    @property
    def remaining(self) -> int:
        return len(self.items) - len(self.resumed.done)

    def run(
        self,
        progress: Callable[[], None] = lambda: None,
        stop: Callable[[], bool] = lambda: False,
        runner: BatchRunner = run_batch,
    ) -> BatchSummary:
        """Answer the remaining lines, appending each record as it is done (`runner`: run_batch's
        signature; edge_et.distributed's answers them on a Ray cluster)."""
        with Journal(self.output) as results, Journal(resume_files.side_path(self.output)) as side:
            summary = runner(
                self.pipeline,
                self.items,
                self.options,
                results.append,
                progress,
                resumed=self.resumed,
                stop=stop,
                on_extracted=lambda index, saved: side.append(
                    {"index": index, "extraction": saved}
                ),
            )
        if summary.left == 0:
            resume_files.finished(self.output)
        return summary
