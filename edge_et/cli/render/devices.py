"""`edge-et compare`: the devices table (one per stage) and the chart (predictions hatched)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from edge_et.cli.render.bench import pyplot, write_figure

CHARTED = ("decode_tok_s", "prefill_tok_s", "ttft_s", "peak_rss_bytes")


def _cell(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "peak_rss_bytes":
        return f"{value / 2**20:.0f} MiB"
    if metric == "pct_of_limit":
        return f"{value:.0f}%"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def render_devices(console: Console, result: dict) -> None:
    """One table per stage, a row per device; then what each prediction is and the notes."""
    devices = result["devices"]
    for stage, rows in result["stages"].items():
        table = Table(title=f"{stage}: devices side by side")
        table.add_column("device", no_wrap=False)
        for label, _ in result["metrics"].values():
            table.add_column(label, justify="right")
        for row in rows:
            device = devices[row["device"]]
            name = device["label"] + (
                "" if device["kind"] == "prediction" else f" [{device['bundle']}]"
            )
            style = "italic yellow" if device["kind"] == "prediction" else None
            table.add_row(name, *[_cell(m, row.get(m)) for m in result["metrics"]], style=style)
        console.print(table)
    for device in devices:
        if device["kind"] == "prediction":
            console.print(
                f"{device['label']}: {device['method']} (from {device['from']}; "
                f"bandwidth x{device['factors']['bandwidth']:.2f}, cores "
                f"x{device['factors']['compute']:.2f})",
                highlight=False,
                markup=False,
            )
            for published in device["published_decode"]:
                console.print(
                    f"  published elsewhere: {published['model']} {published['tok_s']:g} tok/s "
                    f"with {published['runtime']} ({published['source']})",
                    highlight=False,
                    markup=False,
                )
    for note in result["notes"]:
        console.print(f"note: {note}", highlight=False, markup=False)


def plot_devices(result: dict, path: Path) -> Path:
    """Grouped bars per stage for the CHARTED metrics; predictions hatched and labelled."""
    plt = pyplot()
    stages = list(result["stages"])
    fig, axes = plt.subplots(1, len(CHARTED), figsize=(4.2 * len(CHARTED), 4.5), squeeze=False)
    devices = result["devices"]
    width = 0.8 / max(len(devices), 1)
    for ax, metric in zip(axes[0], CHARTED):
        for index, device in enumerate(devices):
            values = [
                next((r.get(metric) or 0 for r in result["stages"][s] if r["device"] == index), 0)
                for s in stages
            ]
            if metric == "peak_rss_bytes":
                values = [v / 2**20 for v in values]
            name = device["label"] + (
                "" if device["kind"] == "prediction" else f" [{device['bundle']}]"
            )
            ax.bar(
                [i + index * width for i in range(len(stages))],
                values,
                width,
                label=name,
                hatch="//" if device["kind"] == "prediction" else None,
                alpha=0.6 if device["kind"] == "prediction" else 1.0,
            )
        ax.set_xticks([i + width * (len(devices) - 1) / 2 for i in range(len(stages))], stages)
        if metric.endswith("tok_s"):
            ax.set_yscale("log")  # a 3 M-parameter VLM and a 1.5 B reasoner share the axis
        label = result["metrics"][metric][0]
        ax.set_title(label + (" (MiB)" if metric == "peak_rss_bytes" else ""), fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        "edge-et compare: measured devices; hatched bars are PREDICTIONS from a device profile",
        fontsize=10,
    )
    return write_figure(plt, fig, path)
