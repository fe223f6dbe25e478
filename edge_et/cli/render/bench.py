"""How a `BenchReport` is shown: rich tables, JSON, a markdown table and a stacked bar chart.

matplotlib is imported inside `plot_report` only (Agg backend, no display needed), so the
runtime works without it; `pip install 'edge-et[bench]'` provides it.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edge_et.core import atomic
from edge_et.errors import MissingExtra

MiB = 2**20
STAGE_COLUMNS = (
    ("load_s", "load s", 1),
    ("image_encode_s", "image s", 1),
    ("prefill_tok_s", "prefill tok/s", 1),
    ("decode_tok_s", "decode tok/s", 1),
    ("ttft_s", "TTFT s", 1),
    ("e2e_s", "end-to-end s", 1),
    ("peak_rss_bytes", "peak RSS MiB", 1 / MiB),
)
# Segments of the stacked bars, bottom to top: (label, stage metric, colour).
SEGMENTS = (
    ("load", "load_s", "#9e9e9e"),
    ("image encode", "image_encode_s", "#8e44ad"),
    ("prefill", "prefill_s", "#2980b9"),
    ("decode", "decode_s", "#e67e22"),
)


def format_number(value: float | None, scale: float = 1.0) -> str:
    if value is None:
        return "-"
    value *= scale
    return (
        f"{value:.0f}"
        if abs(value) >= 100
        else f"{value:.2f}"
        if abs(value) >= 1
        else f"{value:.3f}"
    )


def _cell(summary: dict | None, scale: float = 1.0) -> str:
    """median (min-max): the spread is what tells a reader whether a difference is noise."""
    if not summary:
        return "-"
    return f"{format_number(summary['median'], scale)} ({format_number(summary['min'], scale)}-{format_number(summary['max'], scale)})"


def render_report(console: Console, report: dict) -> None:
    """Stage table, ratios and the budget curve, as rich tables."""
    console.print(stage_table(report))
    console.print(ratio_table(report))
    if report["curve"]:
        console.print(curve_table(report))
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def stage_table(report: dict) -> Table:
    s = report["settings"]
    table = Table(
        title=f"{report['bundle']}: median (min-max) of {s['trials']} trials, extract "
        f"{s['extract_tokens']}, think {s['think_tokens']}+{s['answer_tokens']}, "
        f"direct {s['direct_tokens']} tokens, {report['machine']['threads']} threads",
        title_justify="left",
    )
    table.add_column("stage")
    for _, label, _ in STAGE_COLUMNS:
        table.add_column(label, justify="right")
    for name, metrics in report["stages"].items():
        table.add_row(name, *(_cell(metrics.get(key), scale) for key, _, scale in STAGE_COLUMNS))
    for name, metrics in report["bare"].items():
        if metrics:
            table.add_row(
                f"{name} (bare)",
                *(_cell(metrics.get(key), scale) for key, _, scale in STAGE_COLUMNS),
            )
    return table


def ratio_table(report: dict) -> Table:
    table = Table(title="side by side (medians of per-trial ratios)", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    for stage, o in report["ratios"]["overhead"].items():
        if o.get("comparable"):
            verdict = "meets" if o["meets_goal"] else "misses"
            table.add_row(
                f"{stage} overhead",
                format_number(o["e2e"]),
                f"edge-et / {o.get('baseline', 'bare llama-cpp-python')}, end to end ({verdict} goal <= {o['goal']}); "
                f"TTFT {format_number(o['ttft'])}, decode {format_number(o['decode'])}",
            )
        else:
            table.add_row(f"{stage} overhead", "-", o["note"])
    price = report["ratios"].get("direct_price")
    if price:
        table.add_row(
            "price of Extract+Think",
            format_number(price["resident"]),
            f"x the direct VLM answer (models resident); {format_number(price['with_loads'])} with loads",
        )
    for stage, r in report["roofline"].items():
        table.add_row(
            f"{stage} decode vs bandwidth",
            f"{r['pct_of_limit']:.0f}%",
            f"{format_number(r['decode_tok_s'])} of {format_number(r['limit_tok_s'])} tok/s = "
            f"{format_number(report['bandwidth']['read_bytes_per_s_all_threads'] / 1e9)} GB/s / "
            f"{r['bytes_per_token'] / MiB:.1f} MiB per token",
        )
    return table


def curve_table(report: dict) -> Table:
    table = Table(title="thinking-budget curve", title_justify="left")
    for column in ("think budget", "tokens", "think s", "end-to-end s", "with loads s"):
        table.add_column(column, justify="right")
    for row in report["curve"]:
        table.add_row(
            str(row["budget"]),
            format_number(row["tokens"]["median"]),
            _cell(row["think_e2e_s"]),
            format_number(row["e2e_s"]),
            format_number(row["e2e_with_loads_s"]),
        )
    return table


def save_json(report: dict, path: Path) -> Path:
    """Write the report as indented JSON (the folder is created)."""
    return atomic.write_text(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def markdown_rows(report: dict, name: str | None = None) -> list[str]:
    """One markdown table row per stage (config column: `name`, else the bundle's name)."""
    rows = []
    o, price = report["ratios"]["overhead"], report["ratios"].get("direct_price") or {}
    for stage, m in report["stages"].items():
        roof = report["roofline"].get(stage, {})
        ratio = o.get(stage, {}).get("e2e")
        rows.append(
            "| "
            + " | ".join(
                [
                    name or report["bundle"],
                    stage,
                    _cell(m.get("load_s")),
                    _cell(m.get("image_encode_s")),
                    _cell(m.get("prefill_tok_s")),
                    _cell(m.get("decode_tok_s")),
                    _cell(m.get("ttft_s")),
                    _cell(m.get("e2e_s")),
                    format_number((m.get("peak_rss_bytes") or {}).get("median"), 1 / MiB),
                    format_number(ratio),
                    f"{roof['pct_of_limit']:.0f}%" if roof else "-",
                    format_number(price.get("resident")) if stage == "direct" else "-",
                ]
            )
            + " |"
        )
    return rows


MARKDOWN_HEADER = (
    "| config | stage | load s | image s | prefill tok/s | decode tok/s | TTFT s | "
    "end-to-end s | peak RSS MiB | edge-et/bare | % of bandwidth limit | "
    "E+T / direct |\n|" + "---|" * 12
)


def _stack(report: dict, stage: str, side: str = "stages") -> dict[str, float]:
    metrics = report[side].get(stage) or {}
    median = lambda key: (metrics.get(key) or {}).get("median") or 0.0  # noqa: E731
    if side == "bare":  # mtmd's helper encodes and prefills in one call: show the prompt as one
        return {
            "load": 0.0,
            "image encode": 0.0,
            "prefill": median("ttft_s"),
            "decode": median("decode_s"),
        }
    return {label: median(key) for label, key, _ in SEGMENTS}


def plot_report(report: dict, path: Path) -> Path:
    """A stacked per-stage bar chart (and the budget curve beside it) as a PNG."""
    plt = pyplot()
    bars = [
        ("Extract+Think", report, "stages", ("extract", "think")),
        ("bare baseline", report, "bare", ("extract", "think")),
        ("direct VLM", report, "stages", ("direct",)),
    ]
    return _save_figure(
        plt,
        bars,
        [report],
        f"edge-et bench: {report['bundle']} on {report['machine']['cpu']} "
        f"({report['machine']['threads']} threads)",
        path,
    )


def plot_comparison(result: dict, path: Path) -> Path:
    """The stacked Extract+Think and direct bars of every compared bundle, and their curves."""
    plt = pyplot()
    reports = result["reports"]
    bars = [
        (f"{_short(r)}\n{label}", r, "stages", stages)
        for r in reports
        for label, stages in (("E+T", ("extract", "think")), ("direct", ("direct",)))
    ]
    machine = reports[0]["machine"]
    return _save_figure(
        plt,
        bars,
        reports,
        f"edge-et bench: {' vs '.join(_short(r) for r in reports)} "
        f"on {machine['cpu']} ({machine['threads']} threads)",
        path,
    )


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtra(
            "--plot needs matplotlib: pip install 'edge-et[bench]'", extra="bench"
        ) from None
    return plt


def _save_figure(plt, bars, reports: list[dict], title: str, path: Path) -> Path:
    bars = [b for b in bars if all(b[1][b[2]].get(s) for s in b[3])]
    curves = [r for r in reports if r["curve"]]
    panels = 2 if curves else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels + 1, 4.5), squeeze=False)
    _stacked(axes[0][0], bars)
    for report in curves:
        _curve_plot(axes[0][1], report, prefix=f"{_short(report)}: " if len(curves) > 1 else "")
    fig.suptitle(title, fontsize=10)
    return write_figure(plt, fig, path)


def write_figure(plt, fig, path: Path) -> Path:
    """Lay out `fig`, write it to `path` (folders made) and free it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short(report: dict) -> str:
    """The bundle's name and its backends: two exports of one model share a name."""
    backends = dict.fromkeys(m.get("backend", "llama.cpp") for m in report["models"].values())
    return f"{report['bundle']} ({'+'.join(backends)})"


def comparison_table(result: dict) -> Table:
    """Per stage and metric: each bundle's median and its paired ratio to the first bundle."""
    comparison, reports = result["comparison"], result["reports"]
    names = [_short(r) for r in reports]
    table = Table(
        title=f"side by side, {comparison['trials']} interleaved trials: medians, and "
        "median per-trial ratio to the first bundle",
        title_justify="left",
    )
    table.add_column("stage")
    table.add_column("metric")
    for k, name in enumerate(names):
        table.add_column(name, justify="right")
        if k:
            table.add_column("ratio", justify="right")
    for stage, metrics in comparison["stages"].items():
        for key, row in metrics.items():
            if all(m is None for m in row["medians"]):
                continue
            scale = 1 / MiB if key == "peak_rss_bytes" else 1.0
            cells = []
            for k, (median, ratio) in enumerate(zip(row["medians"], row["ratios_to_first"])):
                cells.append(format_number(median, scale))
                if k:
                    cells.append(format_number(ratio))
            label = row["label"] + (" MiB" if key == "peak_rss_bytes" else "")
            table.add_row(stage, label, *cells)
    return table


def render_comparison(console: Console, result: dict) -> None:
    """Each bundle's stage table and overheads, then the side-by-side table."""
    for report in result["reports"]:
        console.print(stage_table(report))
        console.print(ratio_table(report))
    console.print(comparison_table(result))
    notes = dict.fromkeys(n for r in result["reports"] for n in r["notes"])
    for note in notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def _stacked(ax, bars) -> None:
    hatches = {"extract": "", "think": "//", "direct": ""}
    for x, (_label, report, side, stages) in enumerate(bars):
        bottom = 0.0
        for stage in stages:
            for (segment, value), (_, _, colour) in zip(
                _stack(report, stage, side).items(), SEGMENTS
            ):
                ax.bar(
                    x,
                    value,
                    bottom=bottom,
                    color=colour,
                    hatch=hatches[stage],
                    edgecolor="white",
                    label=segment if x == 0 and stage == "extract" else None,
                )
                bottom += value
        ax.text(x, bottom, f"{bottom:.2f} s", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.set_ylabel("seconds (median); hatched: think stage")
    ax.set_title(
        "bare runs share edge-et's loaded models (no load); their prefill bar is encode + prefill",
        fontsize=7,
    )
    ax.legend(fontsize=8)


def _curve_plot(ax, report: dict, prefix: str = "") -> None:
    budgets = [row["budget"] for row in report["curve"]]
    ax.plot(
        budgets,
        [row["e2e_s"] for row in report["curve"]],
        marker="o",
        label=f"{prefix}models resident",
    )
    ax.plot(
        budgets,
        [row["e2e_with_loads_s"] for row in report["curve"]],
        marker="s",
        label=f"{prefix}with model loads",
    )
    ax.set_xlabel("think budget (tokens)")
    ax.set_ylabel("end-to-end seconds")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
