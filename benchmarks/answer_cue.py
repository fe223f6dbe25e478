"""Parse failures of an instruct reasoner without and with the answer cue (runtime/answer_cue.py).

The reasoner answers held-out scenes from their true extraction (the oracle+think cell of
benchmarks/replication.py), step by step, sampled per question as the replication does.
One run measures both: the cue only ever appends after the model's own reasoning has
ended, so the text before the cue is exactly what the reasoner wrote without it (same seed,
same tokens). "without" counts the questions whose reasoning named no option letter;
"with" counts those still without one after the cue.

    python -m benchmarks.answer_cue                       # 60 scenes, Qwen2.5-Coder-1.5B, resumable
    python -m benchmarks.answer_cue --limit 200 --reasoner qwen2.5-coder-0.5b
    python -m benchmarks.answer_cue --model PATH.gguf     # any instruct GGUF

Every answer goes to benchmarks/results/answer_cue-<reasoner>.jsonl as it comes (a stopped
run resumes), the summary to benchmarks/results/answer_cue-<reasoner>.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.replication import (
    DECODING,
    RESULTS,
    machine,
    reasoner_stage,
    say,
    work_dir,
)

CUE = "\nAnswer:"


def reasoner_bundle(name: str, model: Path | None) -> Path:
    from export.bundle import Stage, write_bundle

    stage = (
        Stage(model, n_ctx=8192, thinking=False, source=str(model))
        if model
        else reasoner_stage(name)
    )
    target = work_dir() / "bundles" / f"answer-cue+{name}"
    write_bundle(target, name=f"reasoner-{name}", reasoning=stage, decoding=DECODING)
    return target


def measure(args) -> Path:
    """Answer the first `args.limit` held-out scenes; one JSON line per scene, resumed."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.eval.metrics import answer_letter
    from edge_et.runtime.pipeline import Pipeline, RunOptions
    from export.scenes.forms import HELDOUT_SEED, example, training_pair

    out = args.out / f"answer_cue-{args.reasoner}.jsonl"
    done = {json.loads(line)["id"] for line in out.open()} if out.is_file() else set()
    if all(example(HELDOUT_SEED, index).id in done for index in range(args.limit)):
        return out  # all measured: only the summary is rewritten, no model loads
    with Pipeline(
        Bundle.load(reasoner_bundle(args.reasoner, args.model)), n_threads=args.threads
    ) as pipeline:
        for index in range(args.limit):
            ex = example(HELDOUT_SEED, index)
            if ex.id in done:
                continue
            truth = training_pair(ex, "extract")[1]
            started = time.perf_counter()
            result = pipeline.reason_over(
                truth, ex.question.prompt_text(), RunOptions(seed=index + args.seed)
            )
            think = result.stages["think"]
            before = result.reasoning.rsplit(CUE, 1)[0] if think.answer_cued else result.reasoning
            record = {
                "id": ex.id,
                "gold": ex.question.answer,
                "category": ex.question.category,
                "cued": think.answer_cued,
                "letter": answer_letter(result.answer, "ABCD"),
                "letter_without_cue": _letter_of(before)
                if think.answer_cued
                else answer_letter(result.answer, "ABCD"),
                "generated_tokens": think.generated_tokens,
                "forced_tokens": think.forced_tokens,
                "seconds": round(time.perf_counter() - started, 2),
                "reasoning": result.reasoning,
            }
            with out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            say(
                f"{ex.id}: cued={think.answer_cued} letter={record['letter']} gold={record['gold']}"
            )
    return out


def _letter_of(text: str) -> str | None:
    from edge_et.core.prompts import parse_answer
    from edge_et.eval.metrics import answer_letter

    return answer_letter(parse_answer(text)[0], "ABCD")


def summarize(path: Path) -> dict:
    from edge_et.eval.metrics import wilson_interval

    rows = [json.loads(line) for line in path.open()]
    n = len(rows)
    summary = {"n": n, "cued": sum(r["cued"] for r in rows)}
    for name, key in (("without_cue", "letter_without_cue"), ("with_cue", "letter")):
        failures = sum(r[key] is None for r in rows)
        correct = sum(r[key] == r["gold"] for r in rows)
        summary[name] = {
            "parse_failures": failures,
            "failure_ci95": wilson_interval(failures, n),
            "correct": correct,
            "accuracy_ci95": wilson_interval(correct, n),
        }
    summary["hit_max_tokens"] = sum(
        r["generated_tokens"] >= DECODING["reason"]["max_tokens"] and not r["cued"] for r in rows
    )
    return summary


def write_markdown(summary: dict, reasoner: str, args) -> Path:
    def pct(k, v):
        return f"{k} ({k / summary['n']:.0%}) [{v[0]:.0%}-{v[1]:.0%}]"

    lines = [
        "# The answer cue: parse failures without and with it",
        "",
        (
            f"`python -m benchmarks.answer_cue --limit {args.limit} --reasoner {reasoner}`: the reasoner "
            "over held-out scenes' true extractions (oracle+think), decoding "
            f"`{json.dumps(DECODING['reason'])}` (the replication's), temperature 0.7, seed per scene. "
            f"Machine: `{json.dumps(machine())}`; shared with other jobs (times not compared)."
        ),
        "",
        (
            "| reasoner | n | cue appended | parse failures without cue [95% CI] | with cue [95% CI] "
            "| correct without | correct with |"
        ),
        "|---|---|---|---|---|---|---|",
        (
            f"| {reasoner} | {summary['n']} | {summary['cued']} "
            f"| {pct(summary['without_cue']['parse_failures'], summary['without_cue']['failure_ci95'])} "
            f"| {pct(summary['with_cue']['parse_failures'], summary['with_cue']['failure_ci95'])} "
            f"| {summary['without_cue']['correct']} | {summary['with_cue']['correct']} |"
        ),
        "",
    ]
    path = args.out / f"answer_cue-{reasoner}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--reasoner", default="qwen2.5-coder-1.5b")
    parser.add_argument(
        "--model", type=Path, default=None, help="an instruct GGUF instead of the catalog's"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    path = measure(args)
    summary = summarize(path)
    print(json.dumps(summary, indent=2))
    print(write_markdown(summary, args.reasoner, args))


if __name__ == "__main__":
    main()
