"""Human-readable output of the CLI (rich); JSON output needs none of this."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from edge_et.bundle.manifest import Bundle
from edge_et.core.stats import Result

STAGE_COLUMNS = (
    ("load_s", "load s"),
    ("image_encode_s", "image s"),
    ("prompt_tokens", "prompt tok"),
    ("prefill_s", "prefill s"),
    ("generated_tokens", "gen tok"),
    ("decode_s", "decode s"),
    ("decode_tok_s", "tok/s"),
)


def random_weight_warnings(console: Console, bundle: Bundle) -> None:
    """Say plainly when a stage's model is untrained, before its output is shown."""
    for stage in bundle.stages():
        if stage.random_weights:
            console.print(
                f"[yellow]note:[/] the {stage.role} model of bundle '{escape(bundle.name)}' "
                "has random weights (never trained): its text is noise; the run shows "
                "the real architecture and runtime, not a meaningful answer."
            )


def result(console: Console, res: Result, *, streamed: bool = False) -> None:
    """Hint, extraction, reasoning, answer, then a per-stage timing table."""
    if res.hint:
        console.print(f"[bold]hint[/] ({res.hint_source}): {escape(res.hint)}")
    if res.extraction:
        title = "direct answer" if res.mode == "direct" else "extraction"
        console.print(Panel(escape(res.extraction), title=title, title_align="left"))
    if res.reasoning is not None and not streamed:
        console.print(Panel(escape(res.reasoning), title="reasoning", title_align="left"))
    if res.mode != "extract":
        parsed = "" if res.answer_matched else " [dim](no 'Answer:' line; last line used)[/]"
        console.print(f"[bold green]answer:[/] {escape(res.answer)}{parsed}")
        _answer_notes(console, res.stages.get("think"))
    console.print(stage_table(res))


def _answer_notes(console: Console, think) -> None:
    """Say when the answer is not the reasoner's own free text, or could not be limited."""
    if think is None:
        return
    if think.answer_constrained is False:
        console.print(
            "[yellow]note:[/] the question lists options, but this reasoner's vocabulary "
            "has no single token for each letter: the cued answer is free text."
        )
    if think.letter_forced:
        console.print(
            "[dim](the reply named no option: a letter was forced, answer.force_letter)[/]"
        )


def stage_table(res: Result) -> Table:
    table = Table(
        title=f"stages (seed {res.seed}, peak RSS {res.peak_rss_bytes / 2**20:.0f} MiB)",
        title_justify="left",
    )
    table.add_column("stage")
    for _, label in STAGE_COLUMNS:
        table.add_column(label, justify="right")
    for name, stats in res.stages.items():
        values = stats.to_dict()
        table.add_row(name, *(_cell(values.get(key)) for key, _ in STAGE_COLUMNS))
    return table


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if value >= 100 else f"{value:.3f}"
    return str(value)


def bundle_info(console: Console, described: dict) -> None:
    """`edge-et info`: a table of the bundle's files; one block per file where it is too narrow."""
    console.print(f"[bold]{escape(described['name'])}[/]  {escape(described['path'])}")
    if described["description"]:
        console.print(escape(described["description"]))
    rows = _file_rows(described)
    table = _files_table(rows)
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if natural > console.options.max_width:
        # Squeezed, the table would cut file names to "perce…": give each file its own lines.
        table = _files_blocks(rows)
    console.print(table)
    for role, stage in described["stages"].items():
        if stage.get("source"):
            console.print(f"{role}: {escape(stage['source'])}")
        if stage.get("note"):
            console.print(f"[yellow]{role}: {escape(stage['note'])}[/]")
    if "onnx_providers" in described:
        providers = described["onnx_providers"]
        console.print(
            "onnxruntime execution providers here: "
            + escape(", ".join(providers) if isinstance(providers, list) else providers)
        )


INFO_COLUMNS = ("stage", "file", "arch", "quant", "size", "context", "notes")


def _file_rows(described: dict) -> list[tuple[str, ...]]:
    """One row of INFO_COLUMNS per model file (a stage's model, then its mmproj)."""
    rows = []
    for role, stage in described["stages"].items():
        notes = [
            "thinking" if stage["thinking"] else "",
            "RANDOM WEIGHTS" if stage["random_weights"] else "",
        ]
        files = [stage["model"]] + ([stage["mmproj"]] if "mmproj" in stage else [])
        for item in files:
            context = item.get("context_length")
            rows.append(
                (
                    role,
                    item["file"],
                    item.get("architecture", ""),
                    item.get("quantization", ""),
                    f"{item.get('size_bytes', 0) / 2**20:.1f} MiB",
                    f"{stage['n_ctx'] or '-'} / {context}" if context else "-",
                    ", ".join(n for n in notes if n),
                )
            )
    return rows


def _files_table(rows: list[tuple[str, ...]]) -> Table:
    table = Table()
    for column in INFO_COLUMNS[:-1]:
        table.add_column(column)
    table.add_column(INFO_COLUMNS[-1], no_wrap=True)  # "RANDOM WEIGHTS" must never be split
    for row in rows:
        table.add_row(*row)
    return table


def _files_blocks(rows: list[tuple[str, ...]]) -> Table:
    """Stage, then the whole file name (folded only if longer than a line) and its details."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for role, file, arch, quant, size, context, notes in rows:
        context = f"context {context}" if context != "-" else ""
        details = ", ".join(part for part in (arch, quant, size, context) if part)
        grid.add_row(role, escape(file))
        grid.add_row("", details + (f"\n{notes}" if notes else ""))
    return grid


@contextmanager
def batch_progress(console: Console, total: int, *, enabled: bool):
    """A progress bar over batch lines; a no-op when results go to the terminal."""
    if not enabled:
        yield lambda: None
        return
    with Progress(
        TextColumn("batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("batch", total=total)
        yield lambda: progress.advance(task)


def batch_stopped(console: Console, summary, signal_name: str, output, command: str) -> None:
    """The one line a stopped batch leaves: done, left, and the command that continues it."""
    done = summary.lines - summary.left
    where = f" in {output}" if output else ""
    again = (
        f"; resume with: {command}" if output else "; give --output FILE to make a run resumable"
    )
    console.print(
        f"stopped by {signal_name}: {done} of {summary.lines} lines done{where}, "
        f"{summary.left} left{again}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def batch_summary(console: Console, summary) -> None:
    resumed = f" ({summary.resumed} lines done by an earlier run)" if summary.resumed else ""
    console.print(
        f"batch: {summary.answered}/{summary.lines - summary.resumed} answered{resumed}, "
        f"{summary.errors} errors, "
        f"{summary.model_loads} model loads, {summary.image_encodes} image encodes "
        f"({summary.distinct_images} distinct images), residency {summary.residency}, "
        f"{summary.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )
