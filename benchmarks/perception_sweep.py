"""The perception runs issue 16 asks for, as one resumable queue: capacity sweep and baselines.

Each run is the committed models' recipe (`edge-et export train --recipe`: a caption base,
then three tuning rounds, 3,000 steps of 16 scenes; equal data, and the wall time of each is
recorded), then exported to GGUF with parity checks and scored through llama.cpp
(`edge-et export micro-eval`, greedy) on held-out scenes of three kinds:
- classic: render.py's pictures (the committed models' domain);
- varied: varied.py's held-out stream (the new training renderer, unseen scenes);
- shifted: drawn by matplotlib (export/scenes/shifted.py), never trained on.

    python -m benchmarks.perception_sweep                 # every run in RUNS, in order, resumed
    python -m benchmarks.perception_sweep --only micro-extract-mix --limit 200
    python -m benchmarks.perception_sweep --summary       # only rewrite the markdown

Runs go to models/store/micro/sweep/<name>/ (a stopped recipe resumes from its last
checkpoint, export.micro.resume); scores to benchmarks/results/perception_sweep.json as each
finishes, with Wilson intervals, and perception_sweep.md. CPU work is niced by the caller:
`nice -n 15 python -m benchmarks.perception_sweep --threads 1` beside other work.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.replication import RESULTS, ROOT, say

SWEEP = ROOT / "models" / "store" / "micro" / "sweep"
TOKENIZER = ROOT / "models" / "micro" / "extract"  # the committed models' scene BPE
# name: (form, config, training scenes). The extract runs are the capacity sweep (3 M / 13 M /
# 30 M parameters on the mixed stream); the direct pair is the end-to-end baseline's
# investigation (answer-only vs answer-with-text targets, same data as the committed models).
RUNS = {
    "micro-extract-mix": ("extract", "micro", "mix"),
    "micro-direct-classic": ("direct", "micro", "classic"),
    "micro-direct-text-classic": ("direct-text", "micro", "classic"),
    "small-extract-mix": ("extract", "small", "mix"),
    "base-extract-mix": ("extract", "base", "mix"),
}
STREAMS = ("classic", "varied", "shifted")


def run_one(name: str, args, results: dict) -> None:
    from export.micro.eval import evaluate
    from export.micro.recipe import train_recipe
    from export.micro.release import export_run

    form, config, scenes = RUNS[name]
    folder = SWEEP / name
    if not (folder / "train_summary.json").is_file() or not (folder / "hf").is_dir():
        say(f"{name}: training ({form}, {config}, {scenes} scenes)")
        started = time.perf_counter()
        train_recipe(form=form, out=folder, config=config, threads=args.threads, scenes=scenes,
                     tokenizer=TOKENIZER,
                     progress=lambda done, total, entry: _progress(name, done, total, entry))
        say(f"{name}: trained in {time.perf_counter() - started:.0f} s (this session)")
    if not (folder / "gguf" / "bundle.json").is_file():
        say(f"{name}: exporting to GGUF (parity-checked)")
        export_run(folder)
    cell = results.setdefault(name, {"form": form, "config": config, "scenes": scenes})
    cell["training"] = _curve(folder)
    for stream in STREAMS:
        key = f"{stream}-{args.limit}"
        if key not in cell.get("scores", {}):
            say(f"{name}: scoring {args.limit} held-out {stream} scenes")
            cell.setdefault("scores", {})[key] = evaluate(folder / "gguf", form, limit=args.limit, stream=stream)
            save(results)


def _progress(name: str, done: int, total: int, entry: dict) -> None:
    if done % 100 == 0 or done == total:
        say(f"{name}: step {done}/{total} {json.dumps(entry)}")


def _curve(folder: Path) -> list[dict]:
    """The learning curve across rounds: held-out loss (and letter accuracy) by total step."""
    curve, offset = [], 0
    for run in sorted((folder / "rounds").iterdir(), key=lambda p: int(p.name.split("-")[0])):
        log = run / "train_log.jsonl"
        entries = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        curve += [{**e, "step": offset + e["step"]} for e in entries if "heldout_loss" in e]
        offset += int(run.name.rsplit("-", 1)[1])
    return curve


def save(results: dict) -> None:
    path = RESULTS / "perception_sweep.json"
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def write_markdown(results: dict) -> Path:
    from edge_et.eval.metrics import wilson_interval

    lines = ["# Perception sweep: capacity, renderers, and the end-to-end baseline", "",
             ("Produced by `python -m benchmarks.perception_sweep` (its docstring says how). Scores "
             "through llama.cpp (F16, greedy) on held-out scenes; `facts` is the share of "
             "extractions with every needed fact, `recall` the share of true sentences stated "
             "(per-fact accuracy); direct forms are scored by their answer letter. 95% Wilson "
             "intervals."), "", "| run | form | config | trained on | held-out set | n | score [95% CI] |",
             "|---|---|---|---|---|---|---|"]
    for name, cell in results.items():
        for key, score in sorted(cell.get("scores", {}).items()):
            n = score["examples"]
            metric = "correct" if cell["form"].startswith("direct") else "facts_present"
            hits = round(score[metric] * n)
            low, high = wilson_interval(hits, n)
            extra = "" if metric == "correct" else f"; recall {score['sentence_recall']:.0%}"
            lines.append(f"| {name} | {cell['form']} | {cell['config']} | {cell['scenes']} | "
                         f"{key.rsplit('-', 1)[0]} | {n} | {metric} {score[metric]:.0%} "
                         f"[{low:.0%}-{high:.0%}]{extra} |")
    path = RESULTS / "perception_sweep.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=list(RUNS), help="repeatable; default all, in order")
    parser.add_argument("--limit", type=int, default=200, help="held-out scenes per set (default 200)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--summary", action="store_true", help="only rewrite the markdown")
    args = parser.parse_args(argv)
    path = RESULTS / "perception_sweep.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if not args.summary:
        for name in args.only or list(RUNS):
            run_one(name, args, results)
            save(results)
    print(write_markdown(results))


if __name__ == "__main__":
    main()
