"""`edge-et compare`: bench reports saved on different machines, side by side, with device-profile
predictions as labelled rows.

A report (`edge-et bench --out`) carries its device (`machine`: CPU, GPU, cores, RAM, OS,
backend builds) and its per-stage medians. Here every report becomes one row per stage: load,
image encode, prefill and decode tok/s, TTFT, peak RSS and decode as % of that device's
bandwidth limit. A profile's row is a PREDICTION from the first report (the reference), made
by edge_et/runtime/prediction.py: decode scaled by bandwidth, prefill, encode and TTFT by cores,
load and memory as measured. A report saved by `bench --against` contributes both bundles.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from edge_et.errors import InputError
from edge_et.memory.profiles import get_profile
from edge_et.runtime.prediction import COMPUTE_NOTE, scale_factors

STAGES = ("extract", "think", "direct")
# metric -> (label, True when higher is better)
METRICS = {
    "load_s": ("load s", False),
    "image_encode_s": ("encode s", False),
    "prefill_tok_s": ("prefill tok/s", True),
    "decode_tok_s": ("decode tok/s", True),
    "ttft_s": ("TTFT s", False),
    "peak_rss_bytes": ("peak RSS", False),
    "pct_of_limit": ("% of bandwidth limit", True),
}


def read_reports(paths: Sequence[str | Path]) -> list[dict]:
    """The bench reports in `paths` (a `bench --against` file gives both of its reports)."""
    reports = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read the bench report '{path}': {exc}") from None
        found = data.get("reports", [data]) if isinstance(data, dict) else []
        if not found or not all(
            isinstance(r, dict) and "machine" in r and "stages" in r for r in found
        ):
            raise InputError(f"'{path}' is not an `edge-et bench` report (saved with --out)")
        reports += [{**r, "_file": str(path)} for r in found]
    if not reports:
        raise InputError("give at least one bench report")
    return reports


def device_label(machine: dict) -> str:
    """What names a device in a table: CPU (or GPU), cores, RAM."""
    ram = machine.get("ram_bytes")
    parts = [
        machine.get("gpu") or machine.get("cpu") or "unknown device",
        f"{machine.get('threads') or machine.get('usable_cores')} threads",
    ]
    if ram:
        parts.append(f"{ram / 2**30:.0f} GiB")
    return ", ".join(parts)


def measured_rows(report: dict) -> dict[str, dict]:
    """Per stage: the report's medians of METRICS."""
    rows = {}
    for stage in STAGES:
        metrics = report["stages"].get(stage)
        if not metrics:
            continue
        row = {m: (metrics.get(m) or {}).get("median") for m in METRICS if m != "pct_of_limit"}
        row["pct_of_limit"] = (report.get("roofline") or {}).get(stage, {}).get("pct_of_limit")
        rows[stage] = row
    return rows


def predicted_rows(reference: dict, profile_name: str) -> tuple[dict[str, dict], dict]:
    """Per stage: the reference's rows as predicted on the profiled device, and the label."""
    profile = get_profile(profile_name)
    bandwidth = (reference.get("bandwidth") or {}).get("read_bytes_per_s_all_threads")
    if not bandwidth:
        raise InputError(
            f"the reference report '{reference['_file']}' has no bandwidth "
            "measurement (benched with --bandwidth-mib 0): nothing to scale from"
        )
    machine = reference["machine"]
    factors = scale_factors(
        profile,
        here_bandwidth=bandwidth,
        here_cores=machine.get("threads") or machine.get("usable_cores") or 1,
    )
    rows = {}
    for stage, row in measured_rows(reference).items():
        rows[stage] = {
            **row,
            "decode_tok_s": _times(row["decode_tok_s"], factors["bandwidth"]),
            "prefill_tok_s": _times(row["prefill_tok_s"], factors["compute"]),
            "image_encode_s": _times(row["image_encode_s"], 1 / factors["compute"]),
            "ttft_s": _times(row["ttft_s"], 1 / factors["compute"]),
        }
    label = {
        "prediction_for": profile.name,
        "device": profile.description,
        "from": device_label(machine),
        "factors": factors,
        "method": "PREDICTION: decode scaled by bandwidth, " + COMPUTE_NOTE + ", TTFT too; "
        "load and peak RSS as measured on the reference; % of limit unchanged",
        "published_decode": [vars(d) for d in profile.published_decode],
    }
    return rows, label


def _times(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def compare_devices(paths: Sequence[str | Path], profiles: Sequence[str] = ()) -> dict:
    """{"devices": [...], "stages": {stage: [row per device]}, "notes": [...]}: measured devices
    first (in the order given), then one PREDICTION per profile from the first report."""
    reports = read_reports(paths)
    devices, stages = [], {}
    for report in reports:
        devices.append(
            {
                "kind": "measured",
                "label": device_label(report["machine"]),
                "bundle": report.get("bundle"),
                "file": report["_file"],
                "machine": report["machine"],
            }
        )
        _add(stages, measured_rows(report), len(devices) - 1)
    for name in profiles:
        rows, label = predicted_rows(reports[0], name)
        devices.append(
            {
                "kind": "prediction",
                "label": f"{name} (PREDICTED)",
                "bundle": reports[0].get("bundle"),
                **label,
            }
        )
        _add(stages, rows, len(devices) - 1)
    return {"devices": devices, "stages": stages, "metrics": METRICS, "notes": _notes(reports)}


def _add(stages: dict, rows: dict[str, dict], index: int) -> None:
    for stage, row in rows.items():
        stages.setdefault(stage, []).append({"device": index, **row})


def _notes(reports: list[dict]) -> list[str]:
    notes = []
    bundles = {r.get("bundle") for r in reports}
    if len(bundles) > 1:
        notes.append(
            f"the reports bench different bundles ({', '.join(map(str, sorted(bundles, key=str)))}): "
            "the rows compare devices and models at once"
        )
    lengths = {
        json.dumps({k: r["settings"].get(k) for k in ("extract_tokens", "think_tokens")})
        for r in reports
        if r.get("settings")
    }
    if len(lengths) > 1:
        notes.append("the reports generated different token counts: rates compare, totals do not")
    if any(r["machine"].get("gpu") is None for r in reports):
        notes.append(
            "no GPU named in some reports: benched on the CPU (or saved by an older edge-et)"
        )
    return notes
