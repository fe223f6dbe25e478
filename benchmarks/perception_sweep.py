"""The perception runs issue 16 asks for, as one resumable queue: capacity sweep and baselines.

Each run is the committed models' recipe (`edge-et export train --recipe`: a caption base,
then three tuning rounds, 3,000 steps of 16 scenes; equal data, and the wall time of each is
recorded), then exported to GGUF with parity checks and scored through llama.cpp
(`edge-et export micro-eval`, greedy) on held-out scenes of three kinds:
- classic: render.py's pictures (the committed models' domain);
- varied: varied.py's held-out stream (the new training renderer, unseen scenes);
- shifted: drawn by matplotlib (export/scenes/shifted.py), never trained on.

    python -m benchmarks.perception_sweep                 # every run in RUNS but base, in order, resumed
    python -m benchmarks.perception_sweep --max-minutes 55  # stop after ~55 minutes; rerun to continue
    python -m benchmarks.perception_sweep --only micro-extract-mix --limit 200
    python -m benchmarks.perception_sweep --summary       # only rewrite the markdown

Runs go to models/store/micro/sweep/<name>/ (a stopped recipe resumes from its last
checkpoint, export.micro.resume); scores to benchmarks/results/perception_sweep.json as each
finishes, with Wilson intervals, and perception_sweep.md. With `--max-minutes`, training
saves a checkpoint at the first log step (25 steps) past the limit and the command exits
with status 3 ("paused"), and no new export or scoring starts after it: run it again (through
the machine's heavy queue) for the next chunk. Every training chunk and every score records
the 1-minute load average (os.getloadavg) before and after it, beside its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.replication import RESULTS, ROOT, say

SWEEP = ROOT / "models" / "store" / "micro" / "sweep"
TOKENIZER = ROOT / "models" / "micro" / "extract"  # the committed models' scene BPE
# name: (form, config, training scenes). The extract runs are the capacity sweep (3 M / 13 M /
# 30 M parameters on the mixed stream); the direct pairs are the end-to-end baselines
# (answer-only vs answer-with-text targets): the micro ones on the committed models' data, the
# larger ones on the same data and steps as their extract run.
RUNS = {
    "micro-extract-mix": ("extract", "micro", "mix"),
    "micro-direct-classic": ("direct", "micro", "classic"),
    "micro-direct-text-classic": ("direct-text", "micro", "classic"),
    "small-extract-mix": ("extract", "small", "mix"),
    "small-direct-text-mix": ("direct-text", "small", "mix"),
    "small-direct-mix": ("direct", "small", "mix"),
    "base-extract-mix": ("extract", "base", "mix"),
    "base-direct-text-mix": ("direct-text", "base", "mix"),
    "base-direct-mix": ("direct", "base", "mix"),
}
# Run only when named with --only: issue 30 trains `base` only if `small` improves the shifted
# score by at least 5 points over micro (perception_sweep.md says whether it did).
ON_REQUEST = ("base-extract-mix", "base-direct-text-mix", "base-direct-mix")
STREAMS = ("classic", "varied", "shifted")


def run_one(name: str, args, results: dict) -> None:
    from export.micro.eval import evaluate
    from export.micro.recipe import train_recipe
    from export.micro.release import export_run

    form, config, scenes = RUNS[name]
    folder = SWEEP / name
    cell = results.setdefault(name, {"form": form, "config": config, "scenes": scenes})
    if all(f"{stream}-{args.limit}" in cell.get("scores", {}) for stream in STREAMS):
        return  # scored at this --limit: no model needed (its folder may be on another machine)
    if not (folder / "train_summary.json").is_file() or not (folder / "hf").is_dir():
        _check_time(args)
        say(f"{name}: training ({form}, {config}, {scenes} scenes)")
        chunk = _begin()
        try:
            train_recipe(
                form=form,
                out=folder,
                config=config,
                threads=args.threads,
                scenes=scenes,
                tokenizer=TOKENIZER,
                stop_at=args.stop_at,
                pixel_cache=True,
                progress=lambda done, total, entry: _progress(name, done, total, entry),
            )
        finally:  # a paused chunk is recorded too: its minutes and load count toward the run
            cell.setdefault("chunks", []).append(_end(chunk))
            save(results)
        say(f"{name}: trained in {chunk['wall_s']:.0f} s (this chunk)")
    if not (folder / "gguf" / "bundle.json").is_file():
        _check_time(args)
        say(f"{name}: exporting to GGUF (parity-checked)")
        export_run(folder)
    cell["training"] = _curve(folder)
    for stream in STREAMS:
        key = f"{stream}-{args.limit}"
        if key not in cell.get("scores", {}):
            _check_time(args)
            say(f"{name}: scoring {args.limit} held-out {stream} scenes")
            chunk = _begin()
            score = evaluate(folder / "gguf", form, limit=args.limit, stream=stream)
            cell.setdefault("scores", {})[key] = {**score, **_end(chunk)}
            save(results)


class OutOfTime(Exception):
    """--max-minutes passed between two steps of the queue."""


def _check_time(args) -> None:
    if args.stop_at is not None and time.monotonic() >= args.stop_at:
        raise OutOfTime


def _begin() -> dict:
    return {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_before": _load(),
        "_t0": time.perf_counter(),
    }


def _end(chunk: dict) -> dict:
    """The chunk's record: when, wall seconds, load average before and after (1, 5, 15 min)."""
    wall = time.perf_counter() - chunk.pop("_t0")
    chunk.update(wall_s=round(wall, 1), load_after=_load())
    return chunk


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _progress(name: str, done: int, total: int, entry: dict) -> None:
    if done % 100 == 0 or done == total:
        say(f"{name}: step {done}/{total} {json.dumps(entry)}")


def _curve(folder: Path) -> list[dict]:
    """The learning curve across rounds: held-out loss (and letter accuracy) by total step."""
    curve, offset = [], 0
    for run in sorted((folder / "rounds").iterdir(), key=lambda p: int(p.name.split("-")[0])):
        log = run / "train_log.jsonl"
        entries = (
            [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        )
        curve += [{**e, "step": offset + e["step"]} for e in entries if "heldout_loss" in e]
        offset += int(run.name.rsplit("-", 1)[1])
    return curve


def save(results: dict) -> None:
    path = RESULTS / "perception_sweep.json"
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def write_markdown(results: dict) -> Path:
    from edge_et.eval.metrics import wilson_interval

    lines = [
        "# Perception sweep: capacity, renderers, and the end-to-end baseline",
        "",
        (
            "Produced by `python -m benchmarks.perception_sweep` (its docstring says how). Scores "
            "through llama.cpp (F16, greedy) on held-out scenes; `facts` is the share of "
            "extractions with every needed fact, `recall` the share of true sentences stated "
            "(per-fact accuracy); direct forms are scored by their answer letter. 95% Wilson "
            "intervals. `load`: the 1-minute load average before / after (2 cores; '-' where a "
            "result predates its recording: those ran at load 10-19)."
        ),
        "",
        "| run | form | config | trained on | held-out set | n | score [95% CI] | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, cell in results.items():
        for key, score in sorted(cell.get("scores", {}).items()):
            n = score["examples"]
            metric = "correct" if cell["form"].startswith("direct") else "facts_present"
            hits = round(score[metric] * n)
            low, high = wilson_interval(hits, n)
            extra = "" if metric == "correct" else f"; recall {score['sentence_recall']:.0%}"
            lines.append(
                f"| {name} | {cell['form']} | {cell['config']} | {cell['scenes']} | "
                f"{key.rsplit('-', 1)[0]} | {n} | {metric} {score[metric]:.0%} "
                f"[{low:.0%}-{high:.0%}]{extra} | {_loads(score)} |"
            )
    trained = [(name, cell["chunks"]) for name, cell in results.items() if cell.get("chunks")]
    if trained:
        lines += [
            "",
            "Training time recorded per chunk (this command's runs since load was recorded):",
            "",
            "| run | chunks | wall minutes | load before / after, per chunk |",
            "|---|---|---|---|",
        ]
        for name, chunks in trained:
            minutes = sum(chunk["wall_s"] for chunk in chunks) / 60
            lines.append(
                f"| {name} | {len(chunks)} | {minutes:.0f} | "
                f"{', '.join(_loads(chunk) for chunk in chunks)} |"
            )
    path = RESULTS / "perception_sweep.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _loads(record: dict) -> str:
    if "load_before" not in record:
        return "-"
    return f"{record['load_before'][0]:.2f} / {record['load_after'][0]:.2f}"


def main(argv: list[str] | None = None) -> None:
    from export.micro.resume import Paused

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=list(RUNS),
        help="repeatable; default every run but the base ones, in order",
    )
    parser.add_argument(
        "--limit", type=int, default=200, help="held-out scenes per set (default 200)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="pause after about this many minutes (exit 3); the same command continues",
    )
    parser.add_argument("--summary", action="store_true", help="only rewrite the markdown")
    args = parser.parse_args(argv)
    if args.max_minutes is not None and args.max_minutes <= 0:
        parser.error("--max-minutes must be positive")
    args.stop_at = None if args.max_minutes is None else time.monotonic() + 60 * args.max_minutes
    path = RESULTS / "perception_sweep.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    paused = None
    if not args.summary:
        try:
            for name in args.only or [name for name in RUNS if name not in ON_REQUEST]:
                run_one(name, args, results)
                save(results)
        except Paused as stop:
            paused = f"paused: {stop}"
        except OutOfTime:
            paused = f"paused: --max-minutes {args.max_minutes:g} reached between runs"
        save(results)
    print(write_markdown(results))
    if paused:
        say(paused + "; the same command continues")
        sys.exit(3)


if __name__ == "__main__":
    main()
