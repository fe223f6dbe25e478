"""`edge-et bench --against B`: two bundles benched side by side in one run.

The use: the GGUF bundle and the ONNX bundle exported from the same checkpoints (or two
quantizations, or two devices' builds), to choose between them on this device. Trials
interleave, A B then B A, so drift and other processes' noise hit both alike, and every
ratio is the median of per-trial ratios of neighbours in time. Each bundle also
gets its full single-bundle report (bare baseline, direct price, curve), built from the same
trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edge_et import backends
from edge_et.bench.report import build_report, paired_median, summarize
from edge_et.bench.run import (
    TrialRunner,
    bench_steps,
    load_benchable,
    load_pictures,
    measure_bandwidth_step,
)
from edge_et.bench.settings import BenchSettings, Say, Trial
from edge_et.bundle.manifest import Bundle
from edge_et.core.images import LoadedImage
from edge_et.errors import InputError
from edge_et.runtime.measure import reset_peak_rss

# metric -> (label, True when higher is better): what the comparison table shows per stage.
COMPARED = {
    "load_s": ("load s", False),
    "image_encode_s": ("image encode s", False),
    "prefill_tok_s": ("prefill tok/s", True),
    "decode_tok_s": ("decode tok/s", True),
    "ttft_s": ("TTFT s", False),
    "e2e_s": ("end-to-end s", False),
    "peak_rss_bytes": ("peak RSS", False),
}


def comparison_steps(settings: BenchSettings, n_bundles: int = 2) -> int:
    """Progress lines of a comparison: the bandwidth once, everything else per bundle."""
    bandwidth = 1 if settings.bandwidth_mib else 0
    return bandwidth + n_bundles * (bench_steps(settings) - bandwidth)


def run_comparison(
    bundles: Sequence[Bundle | str | Path],
    *,
    images: Sequence[str | Path | LoadedImage],
    progress: Say | None = None,
    **settings,
) -> dict:
    """Bench every bundle in `bundles` (the first is the reference) in one interleaved run.

    Returns {"reports": [each bundle's BenchReport dict], "comparison": {...}}: per stage
    and metric, each bundle's median and its paired ratio to the first bundle's.
    """
    settings = BenchSettings(**settings)
    settings.check()
    loaded = [load_benchable(b) for b in bundles]
    if len(loaded) < 2:
        raise InputError("a comparison needs two bundles (--bundle and --against)")
    pictures = load_pictures(images)
    say = progress or (lambda line: None)
    bandwidth = measure_bandwidth_step(settings, say)
    runners = [TrialRunner(b, settings, pictures, say) for b in loaded]
    names = [f"{b.name} [{k}]" for k, b in enumerate(loaded)]
    for index in range(settings.warmup):
        for k in _order(index, len(runners)):
            runners[k].trial(index, label=f"{names[k]} warm-up {index + 1}/{settings.warmup}")
    trials: list[list[Trial]] = [[] for _ in runners]
    for i in range(settings.trials):
        for k in _order(i, len(runners)):
            label = f"{names[k]} trial {i + 1}/{settings.trials}"
            trials[k].append(runners[k].trial(settings.warmup + i, label=label))
    curves = [r.curve() if settings.budgets else {} for r in runners]
    stage_peaks = reset_peak_rss()
    reports = [
        build_report(b, settings, t, c, bandwidth, stage_peaks=stage_peaks).to_dict()
        for b, t, c in zip(loaded, trials, curves)
    ]
    return {"reports": reports, "comparison": compare(loaded, trials)}


def _order(index: int, n: int) -> list[int]:
    """Bundle order of trial `index`: forwards on even trials, backwards on odd ones."""
    return list(range(n)) if index % 2 == 0 else list(reversed(range(n)))


def compare(bundles: Sequence[Bundle], trials: Sequence[Sequence[Trial]]) -> dict:
    """Per bundle its identity; per stage and metric the medians and paired ratios to bundle 0."""
    reference = trials[0]
    stages = [s for s in ("extract", "think", "direct") if all(s in t[0].edge for t in trials)]
    table = {}
    for stage in stages:
        table[stage] = {}
        for metric, (label, higher_better) in COMPARED.items():
            values = [[_value(t, stage, metric) for t in runs] for runs in trials]
            table[stage][metric] = {
                "label": label,
                "higher_is_better": higher_better,
                "medians": [(summarize(v) or {}).get("median") for v in values],
                "ratios_to_first": [paired_median(list(zip(v, values[0]))) for v in values],
            }
    return {
        "bundles": [_identity(b) for b in bundles],
        "reference": 0,
        "stages": table,
        "trials": len(reference),
    }


def _value(trial: Trial, stage: str, metric: str) -> float | None:
    if metric == "load_s":
        return trial.load_s.get("perception" if stage in ("extract", "direct") else "reasoning")
    if metric == "peak_rss_bytes":
        return trial.peak_rss_bytes.get(stage)
    return trial.edge[stage].metrics().get(metric)


def _identity(bundle: Bundle) -> dict:
    """What tells the bundles apart: backend, files, their quantization and size (model +
    mmproj / vision graph)."""
    stages = {}
    for s in bundle.stages():
        files = backends.get(s.backend).describe(s)
        quant = files["model"].get("quantization")
        size = sum(f.get("size_bytes", 0) for f in files.values())
        stages[s.role] = {
            "backend": s.backend,
            "arch": s.arch,
            "file": s.model,
            "quantization": quant,
            "size_bytes": size,
        }
    return {"name": bundle.name, "path": str(bundle.path), "stages": stages}
