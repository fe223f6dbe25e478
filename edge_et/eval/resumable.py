"""An evaluation whose predictions survive crashes: `eval ... --predictions P [--resume]`.

The predictions file and the staged extractions (`P.extractions.jsonl`) are journals (whole
lines, fsync'd every second). With `--resume`, after the data file's sha256 and the settings
are checked (edge_et.core.resume), every (mode, line) already in P is scored from P without
asking again, saved extractions skip the perception model, and the rest is appended. The
report covers every item, as an uninterrupted run's would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edge_et.core import resume as resume_files
from edge_et.core.journal import Journal
from edge_et.eval.run import Earlier, EvalData, EvalItem, EvalReport, evaluate, prediction_row
from edge_et.runtime.batch import BatchRunner, run_batch
from edge_et.runtime.pipeline import Pipeline, RunOptions
from edge_et.runtime.resumable import run_settings


def eval_settings(pipeline: Pipeline, options: RunOptions, seed: int) -> dict:
    """What shapes the predictions (the mode is part of each row's key, so modes may change)."""
    return run_settings(pipeline, options, leave_out=("mode",), seed=seed)


def _keyed(entries: list[dict], value: str | None) -> dict[tuple[str, int], dict]:
    return {
        (entry["mode"], entry["line"]): entry[value] if value else entry
        for entry in entries
        if isinstance(entry.get("mode"), str)
        and isinstance(entry.get("line"), int)
        and (value is None or isinstance(entry.get(value), dict))
    }


class EvalRun:
    """`data` in `modes`, predictions journaled to `predictions`; earlier lines checked or cleared."""

    def __init__(
        self,
        pipeline: Pipeline,
        data: EvalData,
        modes: list[str],
        options: RunOptions,
        predictions: Path,
        *,
        seed: int = 0,
        resume: bool = False,
    ):
        self.pipeline, self.data, self.modes, self.options = pipeline, data, modes, options
        self.predictions, self.seed = Path(predictions), seed
        point = resume_files.prepare(
            predictions, data.path, eval_settings(pipeline, options, seed), resume=resume
        )
        self.earlier = Earlier(
            rows=_keyed(point.records, None), extractions=_keyed(point.extractions, "extraction")
        )

    @property
    def remaining(self) -> int:
        asked = {(mode, item.line) for mode in self.modes for item in self.data.items}
        return len(asked - set(self.earlier.rows))

    def run(
        self,
        progress: Callable[[], None] = lambda: None,
        stop: Callable[[], bool] = lambda: False,
        runner: BatchRunner = run_batch,
    ) -> EvalReport:
        with (
            Journal(self.predictions) as rows,
            Journal(resume_files.side_path(self.predictions)) as side,
        ):

            def record(mode: str, item: EvalItem, record: dict, scored) -> None:
                rows.append(prediction_row(mode, item, record, scored))

            def extracted(mode: str, item: EvalItem, saved: dict) -> None:
                side.append({"mode": mode, "line": item.line, "extraction": saved})

            report = evaluate(
                self.pipeline,
                self.data,
                self.modes,
                self.options,
                seed=self.seed,
                progress=progress,
                on_record=record,
                earlier=self.earlier,
                on_extracted=extracted,
                stop=stop,
                runner=runner,
            )
        if not stop():
            resume_files.finished(self.predictions)
        return report
