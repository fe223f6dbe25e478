"""Human-readable output of `edge-et eval` and `edge-et data` (rich): progress and tables."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from edge_et.eval.metrics import Accuracy, by_category, stage_medians
from edge_et.eval.run import EvalReport


@contextmanager
def progress_bar(console: Console, label: str, total: int):
    """A transient bar on `console`; yields the function that advances it by one."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)


def percent(acc: Accuracy) -> str:
    """`62.5% [48.1-75.0]`: accuracy with its 95% Wilson interval, or `-` with nothing scored."""
    if acc.accuracy is None:
        return "-"
    low, high = acc.ci95
    return f"{100 * acc.accuracy:.1f}% [{100 * low:.1f}-{100 * high:.1f}]"


def report_tables(console: Console, report: EvalReport) -> None:
    """Accuracy side by side per mode (overall, then per category), then latency per mode."""
    modes = list(report.modes.values())
    console.print(
        f"[bold]{escape(report.bundle)}[/] on {escape(str(report.data.path))}: "
        f"{len(report.data.items)} questions, seed {report.seed}",
        highlight=False,
    )
    accuracy_table = Table(title="accuracy (95% Wilson interval)", title_justify="left")
    accuracy_table.add_column("")
    for mode in modes:
        accuracy_table.add_column(mode.mode, justify="right")
    accuracy_table.add_row("[bold]overall[/]", *(percent(m.overall) for m in modes))
    categories = sorted({name for m in modes for name in by_category(m.rows)})
    if len(categories) > 1:
        for name in categories:
            accuracy_table.add_row(escape(name), *(_category(m, name) for m in modes))
    accuracy_table.add_row("chance", *(_chance(m.overall) for m in modes))
    accuracy_table.add_row("parse failures", *(str(m.overall.parse_failures) for m in modes))
    accuracy_table.add_row("errors", *(str(m.overall.errors) for m in modes))
    console.print(accuracy_table)
    console.print(latency_table(report))
    _data_errors(console, report)


def latency_table(report: EvalReport) -> Table:
    """Median seconds per stage and per question, model loads and wall time, per mode."""
    medians = {name: stage_medians(m.rows) for name, m in report.modes.items()}
    stages = list(
        dict.fromkeys(s for values in medians.values() for s in values if s != "question")
    )
    table = Table(title="median seconds per question (model loads excluded)", title_justify="left")
    table.add_column("mode")
    for stage in stages + ["question"]:
        table.add_column(stage, justify="right")
    table.add_column("loads", justify="right")
    table.add_column("wall s", justify="right")
    for name, mode in report.modes.items():
        cells = [_seconds(medians[name].get(stage)) for stage in stages + ["question"]]
        table.add_row(name, *cells, str(mode.model_loads), f"{mode.seconds:.1f}")
    return table


def _category(mode, name: str) -> str:
    acc = by_category(mode.rows).get(name)
    return f"{percent(acc)} n={acc.scored}" if acc else "-"


def _chance(acc: Accuracy) -> str:
    return "-" if acc.chance is None else f"{100 * acc.chance:.1f}%"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _data_errors(console: Console, report: EvalReport) -> None:
    errors = report.data.errors
    if not errors:
        return
    console.print(f"[yellow]{len(errors)} unusable data line(s) skipped:[/]")
    for line in errors[:10]:
        console.print(f"  {escape(line)}", highlight=False)
    if len(errors) > 10:
        console.print(f"  ... and {len(errors) - 10} more")
