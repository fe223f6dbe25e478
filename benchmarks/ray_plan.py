"""The paper-scale plan: nodes and hours for an MMStar-size evaluation (1,500 questions) and for
extraction-tuning targets of 100,000 pictures, from per-stage speeds already recorded in
benchmarks/results/bench_*.json (`python -m benchmarks.bench_configs`, this 2-core machine,
2 llama.cpp threads, Q4_K_M).

Speeds: the paper-size configurations were measured with random weights at full size: a model's
speed depends on its shapes and quantization, not its weights (generated lengths are fixed).
The one pretrained reasoner of similar size recorded (Qwen2.5-Coder-1.5B, demo config) decodes
at a similar rate and is shown for comparison. Token counts are stated assumptions, not
measurements.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MMSTAR_QUESTIONS = 1_500
TUNING_PICTURES = 100_000
# Assumed generated lengths (tokens) at the paper's settings.
EXTRACTION_TOKENS = 256  # a question-specific description (cap 1024)
THINK_TOKENS = 4096 + 64  # the think budget used in full, then a short answer (an upper bound)
STATEMENT_PROMPT, STATEMENT_TOKENS = 120, 48  # step 1: one declarative sentence
DESCRIPTION_TOKENS = 512  # step 2: a fine-grained description (cap 1024)
NODE_COUNTS = (1, 8, 32, 128)


def stages(config: str) -> dict:
    data = json.loads((RESULTS / f"bench_{config}.json").read_text())
    return {
        name: {
            key: value["median"]
            for key, value in stage.items()
            if isinstance(value, dict) and "median" in value
        }
        for name, stage in data["stages"].items()
    }


def eval_seconds(config: str) -> tuple[float, float]:
    """(perception s, reasoning s) per question: time to first token, then the assumed tokens."""
    s = stages(config)
    return (
        s["extract"]["ttft_s"] + EXTRACTION_TOKENS / s["extract"]["decode_tok_s"],
        s["think"]["ttft_s"] + THINK_TOKENS / s["think"]["decode_tok_s"],
    )


def tuning_seconds(config: str) -> tuple[float, float]:
    """(statement s, description s) per picture: the teacher's LLM, then its VLM."""
    s = stages(config)
    statement = (
        STATEMENT_PROMPT / s["think"]["prefill_tok_s"]
        + STATEMENT_TOKENS / s["think"]["decode_tok_s"]
    )
    return statement, s["extract"]["ttft_s"] + DESCRIPTION_TOKENS / s["extract"]["decode_tok_s"]


def hours_row(label: str, items: int, first: float, second: float) -> str:
    """One table row: per-item seconds and hours on 1..128 nodes like this one.

    A node's two cores serve one stage at a time at the measured 2-thread speeds, so it
    finishes an item every first + second seconds; linear in nodes (Ray's per-line overhead,
    measured above, is a fraction of a second against minutes per item).
    """
    per_node = first + second
    hours = [items * per_node / nodes / 3600 for nodes in NODE_COUNTS]
    in_a_day = -(-items * per_node // (24 * 3600))
    return (
        f"| {label} | {first:.0f} + {second:.0f} | "
        + " | ".join(f"{h:,.1f}" for h in hours)
        + f" | {in_a_day:,.0f} |"
    )


def plan_markdown() -> str:
    header = (
        "| work | s per item (stage 1 + stage 2) | "
        + " | ".join(f"hours, {n} node{'s' if n > 1 else ''}" for n in NODE_COUNTS)
        + " | nodes for 24 h |"
    )
    rule = "|" + "---|" * (3 + len(NODE_COUNTS))
    rows = [
        hours_row(
            f"MMStar eval, {MMSTAR_QUESTIONS:,} questions, {config}",
            MMSTAR_QUESTIONS,
            *eval_seconds(config),
        )
        for config in ("paper-0.6b+1.7b", "paper-1.7b+4b")
    ]
    rows += [
        hours_row(
            f"extraction tuning, {TUNING_PICTURES:,} pictures, teacher {config}",
            TUNING_PICTURES,
            *tuning_seconds(config),
        )
        for config in ("paper-0.6b+1.7b", "paper-1.7b+4b")
    ]
    pretrained = stages("demo+qwen2.5-coder-1.5b")["think"]
    random_17 = stages("paper-0.6b+1.7b")["think"]
    return "\n".join(
        [
            "## Paper-scale plan",
            "",
            "Nodes like this one (2 cores, CPU only), each core busy with one stage at a time at the "
            "measured 2-thread speeds. Per-stage speeds from "
            "[bench_results.md](bench_results.md) (`python -m benchmarks.bench_configs`): the paper "
            "configurations were measured at full size with **random weights** (speed depends on the "
            "shapes and the quantization, not the weights); the one **pretrained** reasoner of that "
            f"size recorded there, Qwen2.5-Coder-1.5B Q4_K_M, decodes at "
            f"{pretrained['decode_tok_s']:.1f} tok/s against {random_17['decode_tok_s']:.1f} for the "
            "random Qwen3-1.7B.",
            "",
            f"Assumed lengths: extraction {EXTRACTION_TOKENS} tokens, thinking {THINK_TOKENS} (the "
            f"paper's 4096 budget used in full: an upper bound; decode slows at long contexts, which "
            f"the short-context rates here do not show); statement {STATEMENT_TOKENS} tokens from a "
            f"{STATEMENT_PROMPT}-token prompt, description {DESCRIPTION_TOKENS} tokens. A node "
            "finishes an item every stage 1 + stage 2 seconds.",
            "",
            header,
            rule,
            *rows,
            "",
            "The stages are far from equal (thinking takes 5-9 times the extraction), so on a "
            "cluster give the pools that ratio: e.g. `--threads 2 --ray-perception-actors 4 "
            "--ray-reasoning-actors 28` on 32 such nodes, rather than the default even split. The "
            "paper's own teacher (Qwen3-VL-8B) is larger than any configuration measured here: "
            "expect its description step to take about twice the 1.7B VLM's time per token.",
        ]
    )


if __name__ == "__main__":
    print(plan_markdown())
