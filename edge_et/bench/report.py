"""The report of `edge-et bench`: summaries, paired ratios, bandwidth limits and notes built from
the recorded trials (edge_et/bench/run.py runs them; edge_et/cli/render/bench.py shows them)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from edge_et import backends
from edge_et.backends.stage_run import StageRun
from edge_et.bench.settings import BenchSettings, Trial
from edge_et.bundle.manifest import Bundle
from edge_et.runtime.measure import machine_info

OVERHEAD_GOAL = 1.03


@dataclass
class BenchReport:
    """Everything one bench run measured; `to_dict()` is the saved JSON.

    stages: per stage (extract, think, direct) metric -> {median, min, max, n} of the
        edge-et runs: load_s, image_encode_s, prefill_tok_s, decode_tok_s, ttft_s, e2e_s,
        peak_rss_bytes, tokens, requested, ...; bare: the same for the bare runs.
    ratios: overhead (edge-et / bare) per stage, direct_price (Extract+Think / direct).
    roofline: per stage, bytes read per token, the bandwidth limit and decode as % of it.
    curve: per think budget, the think stage and the end-to-end latency.
    """

    bundle: str
    settings: dict
    machine: dict
    stages: dict[str, dict]
    bare: dict[str, dict]
    ratios: dict
    bandwidth: dict | None
    roofline: dict
    curve: list[dict]
    trials: list[dict]
    models: dict
    notes: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


# -- the report ---------------------------------------------------------------------------------


def summarize(values: Sequence[float | None]) -> dict | None:
    """{median, min, max, n} of the values that exist; None when none do."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {
        "median": statistics.median(present),
        "min": min(present),
        "max": max(present),
        "n": len(present),
    }


def paired_median(pairs: Sequence[tuple[float | None, float | None]]) -> float | None:
    """Median of a/b over the trials where both exist: each ratio compares neighbours in time."""
    ratios = [a / b for a, b in pairs if a is not None and b]
    return statistics.median(ratios) if ratios else None


def _stage_summary(trials: list[Trial], stage: str, side: str, role: str) -> dict:
    runs = [getattr(t, side)[stage] for t in trials if stage in getattr(t, side)]
    metrics = (
        {key: summarize([r.metrics()[key] for r in runs]) for key in runs[0].metrics()}
        if runs
        else {}
    )
    if side == "edge" and runs:
        metrics["load_s"] = summarize([t.load_s.get(role) for t in trials])
        metrics["peak_rss_bytes"] = summarize([t.peak_rss_bytes.get(stage) for t in trials])
    return metrics


STAGE_ROLES = {"extract": "perception", "direct": "perception", "think": "reasoning"}


def _overhead(trials: list[Trial], stage: str, bare: bool, backend: str) -> dict:
    pairs = [(t.edge[stage], t.bare[stage]) for t in trials if stage in t.bare]
    spec = backends.get(backend)
    if not pairs:
        return {
            "comparable": False,
            "note": "bare baseline skipped (--no-bare)" if not bare else spec.no_bare_note,
        }
    e2e = paired_median([(e.e2e_s, b.e2e_s) for e, b in pairs])
    return {
        "comparable": True,
        "e2e": e2e,
        "baseline": spec.bare_label,
        "ttft": paired_median([(e.ttft_s, b.ttft_s) for e, b in pairs]),
        "decode": paired_median([(b.decode_tok_s, e.decode_tok_s) for e, b in pairs]),
        "goal": OVERHEAD_GOAL,
        "meets_goal": e2e is not None and e2e <= OVERHEAD_GOAL,
    }


def _direct_price(trials: list[Trial]) -> dict | None:
    if not all("direct" in t.edge for t in trials):
        return None
    et = [t.edge["extract"].e2e_s + t.edge["think"].e2e_s for t in trials]
    loads = [t.load_s["perception"] + t.load_s["reasoning"] for t in trials]
    direct = [t.edge["direct"].e2e_s for t in trials]
    return {
        "resident": paired_median(list(zip(et, direct))),
        "with_loads": paired_median(
            [
                (a + load, d + t.load_s["perception"])
                for a, load, d, t in zip(et, loads, direct, trials)
            ]
        ),
        "extract_think_e2e_s": statistics.median(et),
        "direct_e2e_s": statistics.median(direct),
    }


def _roofline(bundle: Bundle, stages: dict, bandwidth: dict | None) -> dict:
    if not bandwidth:
        return {}
    out = {}
    for stage, metrics in stages.items():
        spec = bundle.require(STAGE_ROLES[stage])
        decode, prompt = metrics.get("decode_tok_s"), metrics.get("prompt_tokens")
        if not decode or not prompt:
            continue
        # Mean position while decoding: the prompt plus half the generated tokens.
        position = int(prompt["median"] + metrics["requested"]["median"] / 2)
        need = backends.get(spec.backend).decode_reads(spec, position)
        if need is None:
            continue
        limit = bandwidth["read_bytes_per_s_all_threads"] / need["bytes_per_token"]
        limit_1 = bandwidth["read_bytes_per_s_1_thread"] / need["bytes_per_token"]
        out[stage] = {
            **need,
            "limit_tok_s": limit,
            "limit_tok_s_1_thread": limit_1,
            "decode_tok_s": decode["median"],
            "pct_of_limit": 100 * decode["median"] / limit,
        }
    return out


def _curve_rows(runs: dict[int, list[StageRun]], stages: dict) -> list[dict]:
    extract = stages["extract"]["e2e_s"]["median"]
    loads = stages["extract"]["load_s"]["median"] + stages["think"]["load_s"]["median"]
    rows = []
    for budget, stage_runs in runs.items():
        think = summarize([r.e2e_s for r in stage_runs])
        rows.append(
            {
                "budget": budget,
                "requested": stage_runs[0].requested,
                "tokens": summarize([r.tokens for r in stage_runs]),
                "decode_tok_s": summarize([r.decode_tok_s for r in stage_runs]),
                "think_e2e_s": think,
                "e2e_s": extract + think["median"],
                "e2e_with_loads_s": extract + think["median"] + loads,
            }
        )
    return rows


def _notes(bundle: Bundle, trials: list[Trial], curve: dict, stage_peaks: bool) -> list[str]:
    notes = [
        f"the {s.role} model has RANDOM WEIGHTS: its text is noise, but at fixed generated "
        "lengths (EOS ignored) its speed and memory are those of the real architecture"
        for s in bundle.stages()
        if s.random_weights
    ]
    short = {
        f"{side} {name}: {run.tokens} of {run.requested} tokens ({run.stop_reason})"
        for t in trials
        for side in ("edge", "bare")
        for name, run in getattr(t, side).items()
        if run.tokens != run.requested
    }
    short |= {
        f"curve budget {b}: {r.tokens} of {r.requested} tokens ({r.stop_reason})"
        for b, rs in curve.items()
        for r in rs
        if r.tokens != r.requested
    }
    notes += sorted(short)
    notes.append(
        "peak RSS per stage: the process peak from just before the stage (Linux clear_refs), "
        "every model resident then counted"
        if stage_peaks
        else "peak RSS: this OS cannot reset the peak, so each stage shows the process peak so far"
    )
    return notes


def build_report(
    bundle: Bundle,
    settings: BenchSettings,
    trials: list[Trial],
    curve: dict[int, list[StageRun]],
    bandwidth: dict | None,
    *,
    stage_peaks: bool = True,
) -> BenchReport:
    """Summaries, ratios and limits from the recorded trials."""
    names = [n for n in ("extract", "think", "direct") if n in trials[0].edge]
    stages = {n: _stage_summary(trials, n, "edge", STAGE_ROLES[n]) for n in names}
    bare = {n: _stage_summary(trials, n, "bare", STAGE_ROLES[n]) for n in names if n != "direct"}
    ratios = {
        "overhead": {
            n: _overhead(trials, n, settings.bare, bundle.require(STAGE_ROLES[n]).backend)
            for n in ("extract", "think")
        },
        "direct_price": _direct_price(trials),
    }
    models = {
        s.role: {
            "file": s.model,
            "backend": s.backend,
            "arch": s.arch,
            "mmproj": s.mmproj,
            "thinking": s.thinking,
            "random_weights": s.random_weights,
            "size_bytes": s.model_info.size_bytes if s.model_info else None,
            "file_type": s.model_info.file_type if s.model_info else None,
        }
        for s in bundle.stages()
    }
    settings_dict = {**asdict(settings), "budgets": list(settings.budgets)}
    return BenchReport(
        bundle=bundle.name,
        settings=settings_dict,
        machine=machine_info(settings.n_threads),
        stages=stages,
        bare=bare,
        ratios=ratios,
        bandwidth=bandwidth,
        roofline=_roofline(bundle, stages, bandwidth),
        curve=_curve_rows(curve, stages) if curve else [],
        trials=[t.to_dict() for t in trials],
        models=models,
        notes=_notes(bundle, trials, curve, stage_peaks),
    )
