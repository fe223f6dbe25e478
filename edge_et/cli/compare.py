"""`edge-et compare`: bench reports from different machines side by side (and profile predictions)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edge_et.cli.shared import out


def compare(
    reports: list[Path] = typer.Argument(
        ...,
        help="Bench reports saved with `edge-et bench --out` (the first is the reference of predictions).",
    ),
    device_profile: list[str] = typer.Option(
        [],
        "--device-profile",
        help="Add a PREDICTED row for this profile (repeatable; `edge-et profiles` lists them).",
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write a bar chart (PNG; needs matplotlib)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Compare devices: per stage load, encode, prefill/decode tok/s, TTFT, peak RSS, % of bandwidth limit."""
    from edge_et.bench.devices import compare_devices
    from edge_et.cli.render.devices import plot_devices, render_devices

    result = compare_devices(reports, device_profile)
    if plot is not None:
        plot_devices(result, plot)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        render_devices(out, result)
        if plot is not None:
            out.print(f"chart: {plot}", highlight=False, markup=False)
