"""Accuracy without and with the opt-in forced letter (bundle `answer.force_letter`), on
Extract+Think over held-out scenes: does a letter constrained to the options, where the
reasoner ended naming none ("Answer: None"), change accuracy?

One run measures both. The forced letter only ever appends after the reasoner's own reply
has ended (runtime/answer_cue.py force_letter), so the text before it is exactly what the
reasoner writes without it (same seed, same tokens): "without" scores the paper's parse of
that text, "with" the parse of the whole. Each question is asked as the replication asks it
(benchmarks.replication: the committed extract model, greedy; the reasoner step by step at
temperature 0.7, top-p 0.8, at most 384 tokens, seeded per question).

    python -m benchmarks.forced_letter --model PATH.gguf --name qwen2.5-coder-0.5b --dataset shifted --limit 40

Every question goes to benchmarks/results/forced_letter-<name>-<dataset>.jsonl as it comes (a
stopped run resumes), the summary to forced_letter.md with the load average of each run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from benchmarks.replication import (
    DECODING,
    RESULTS,
    dataset_file,
    perception_stage,
    say,
    work_dir,
)


def bundle(name: str, model: Path) -> Path:
    from export.bundle import Stage, write_bundle

    target = work_dir() / "bundles" / f"forced-letter+{name}"
    write_bundle(
        target,
        name=f"micro-extract+{name}",
        perception=perception_stage("extract", {}),
        reasoning=Stage(model, n_ctx=8192, thinking=False, source=str(model)),
        decoding=DECODING,
    )
    return target


def measure(args) -> Path:
    from edge_et.bundle.manifest import Bundle
    from edge_et.core.choices import answer_letter
    from edge_et.core.prompts import parse_answer
    from edge_et.eval.run import read_eval_file
    from edge_et.runtime.pipeline import Pipeline, RunOptions

    out = RESULTS / f"forced_letter-{args.name}-{args.dataset}.jsonl"
    done = {json.loads(line)["id"] for line in out.open()} if out.is_file() else set()
    items = [
        item
        for item in read_eval_file(dataset_file(args.dataset, args.limit)).items
        if item.id not in done
    ]
    if not items:
        return out
    load_before = os.getloadavg()
    with (
        Pipeline(Bundle.load(bundle(args.name, args.model)), n_threads=args.threads) as pipeline,
        out.open("a", encoding="utf-8") as journal,
    ):
        for item in items:
            started = time.perf_counter()
            result = pipeline.run(
                item.image, item.prompt, RunOptions(seed=item.seed(0), force_letter=True)
            )
            think = result.stages["think"]
            own = result.reasoning
            if think.letter_forced:
                own = result.reasoning[: result.reasoning.rstrip().rfind("\nAnswer:")]
            before = parse_answer(own)[0]
            record = {
                "id": item.id,
                "gold": item.answer,
                "category": item.category,
                "answer_without": before,
                "letter_without": answer_letter(before, "".join(item.options), item.options),
                "letter_with": answer_letter(result.answer, "".join(item.options), item.options),
                "forced": bool(think.letter_forced),
                "cued": bool(think.answer_cued),
                "seconds": round(time.perf_counter() - started, 2),
                "tail": result.reasoning[-160:],
                "load": [round(x, 2) for x in load_before],
            }
            journal.write(json.dumps(record) + "\n")
            journal.flush()
            say(
                f"{item.id}: without={record['letter_without']} with={record['letter_with']} "
                f"gold={item.answer} forced={record['forced']}"
            )
    return out


def summarize() -> Path:
    from edge_et.eval.metrics import wilson_interval

    lines = [
        "# The opt-in forced letter: accuracy without and with it",
        "",
        (
            "Produced by `python -m benchmarks.forced_letter` (its docstring says how). Extract+Think "
            "(the committed micro extract model, then the reasoner step by step, the replication's "
            "decoding); one run gives both columns: the forced letter appends after the reasoner's "
            "own reply. `load`: the 1-minute load average when the run began (2 cores)."
        ),
        "",
        (
            "| reasoner | held-out set | n | correct without [95% CI] | correct with [95% CI] | "
            "no option named: without / with | forced | load |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(RESULTS.glob("forced_letter-*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        if not rows:
            continue
        name, dataset = path.stem.removeprefix("forced_letter-").rsplit("-", 1)
        n = len(rows)
        cells = []
        for key in ("letter_without", "letter_with"):
            hits = sum(row[key] == row["gold"] for row in rows)
            low, high = wilson_interval(hits, n)
            cells.append(f"{hits} ({hits / n:.0%}) [{low:.0%}-{high:.0%}]")
        loads = sorted({row["load"][0] for row in rows})
        lines.append(
            f"| {name} | {dataset} | {n} | {cells[0]} | {cells[1]} | "
            f"{sum(row['letter_without'] is None for row in rows)} / "
            f"{sum(row['letter_with'] is None for row in rows)} | "
            f"{sum(row['forced'] for row in rows)} | "
            f"{', '.join(f'{x:.2f}' for x in loads)} |"
        )
    path = RESULTS / "forced_letter.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="the reasoner's GGUF (an instruct model)")
    parser.add_argument("--name", help="the reasoner's short name, for the file names")
    parser.add_argument("--dataset", default="shifted", choices=("scenes", "shifted"))
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--summary", action="store_true", help="only rewrite forced_letter.md")
    args = parser.parse_args(argv)
    if not args.summary:
        if not args.model or not args.name:
            parser.error("--model and --name are needed (or --summary)")
        measure(args)
    print(summarize())


if __name__ == "__main__":
    main()
