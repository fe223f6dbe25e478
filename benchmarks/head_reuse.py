"""What fixed-split head reuse costs or saves against the reuse it replaced, and against none.

    python -m benchmarks.head_reuse [--bundle models/bundles/default] [--trials 5]

On the demo's real reasoner (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 2 threads), each trial feeds
the same nine reasoning prompts (three descriptions x three questions, a description's questions
in a row, as `eval` asks them per picture in caption-think) through three strategies,
interleaved (their order rotates every trial, so other load hits all alike):

- `none`: every prompt from an empty context;
- `previous`: the reuse before the fix, the longest common prefix with the previous prompt
  (emulated here on the model's llama-cpp-python handle; it made answers depend on order);
- `heads`: today's: segments that end at the fixed instruction and at the description, reused
  only where a kept segment has the same bounds and tokens.

Per strategy: prefill seconds of the nine prompts (median over trials, ratio to `none` per
trial), tokens reused, and whether the 24 greedy tokens after each prompt equal what the same
strategy gives that prompt from an empty context (a fresh process): the property the fix is
for. Equality with `none` is shown too: `heads` evaluates a prompt in three runs of batches
where `none` uses one, and a quantized model may round the two schedules differently.
Writes benchmarks/results/head_reuse.json and .md with the machine and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STRATEGIES = ("none", "previous", "heads")
DESCRIPTIONS = [
    "A white image with 4 shapes: a small red circle in the top left, a small red circle in the "
    "top middle, a small red circle in the top right and a large blue square in the bottom middle.",
    "A white image with 2 shapes: a large green circle in the middle left and a large purple "
    "square in the middle right. The word EDGE is written in black in the top middle.",
    "A white image with 3 shapes: a yellow star in the bottom right, a red circle in the top left "
    "and a green triangle in the middle. The number 7 is written in blue in the bottom left.",
]
QUESTIONS = [
    "How many red circles are in the image?\nA. 1\nB. 2\nC. 3\nD. 4",
    "What colour is the square?\nA. red\nB. blue\nC. green\nD. yellow",
    "What is in the top left?\nA. a circle\nB. a star\nC. a square\nD. nothing",
]
GREEDY_TOKENS = 24


def _prompts(model) -> list[tuple[str, tuple[str, ...]]]:
    from edge_et.core.chat import render_user_turn
    from edge_et.core.prompts import reasoning_heads, reasoning_prompt

    out = []
    for description in DESCRIPTIONS:
        for question in QUESTIONS:
            prompt = render_user_turn(
                model.chat_template,
                reasoning_prompt(description, question, step_by_step=True),
                bos_text=model.bos_text,
                eos_text=model.eos_text,
            )
            heads = reasoning_heads(description)
            at = prompt.find(heads[-1])
            out.append((prompt, tuple(prompt[: at + len(h)] for h in heads)))
    return out


def _start_previous(model, prompt: str):
    """The reuse before the fix: keep the longest common prefix with whatever the context holds."""
    import llama_cpp

    from edge_et.backends.base import PromptStats
    from edge_et.backends.llama_cpp.prefix import common_prefix

    # As the old `start` did: end the previous generation (its last sampled token is still
    # pending) before trimming the context. The removed behaviour has no public entry point.
    model._end_generation()  # noqa: SLF001
    llm = model.llama
    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    started = time.perf_counter()
    reused = max(
        min(common_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens), len(tokens) - 1), 0
    )
    llm.n_tokens = reused
    llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm.ctx), 0, reused, -1)
    llm.eval(tokens[reused:])
    return PromptStats(
        prompt_tokens=len(tokens), prefill_s=time.perf_counter() - started, reused_tokens=reused
    )


def _sequence(model, prompts, strategy: str) -> dict:
    from edge_et.core.decoding import Sampling
    from edge_et.runtime.generation import generate

    prefill, reused, texts = 0.0, 0, []
    model.start(prompt="x")  # every strategy begins from the same empty-ish context
    for prompt, heads in prompts:
        if strategy == "none":
            begun = model.start(prompt=prompt)
        elif strategy == "heads":
            begun = model.start_with_heads(prompt=prompt, heads=heads)
        else:
            begun = _start_previous(model, prompt)
        prefill += begun.prefill_s
        reused += begun.reused_tokens
        texts.append(
            generate(
                model, sampling=Sampling(temperature=0.0), max_tokens=GREEDY_TOKENS, ignore_eos=True
            ).text
        )
    return {"prefill_s": prefill, "reused_tokens": reused, "texts": texts}


def _alone(model, prompts, strategy: str) -> list[str]:
    """Each prompt's text from an empty context, with the strategy's own batch schedule."""
    texts = []
    for prompt in prompts:
        texts.append(_sequence(model, [prompt], strategy)["texts"][0])
    return texts


def measure(bundle: Path, trials: int, threads: int) -> dict:
    from edge_et.backends.llama_cpp.model import LlamaCppModel
    from edge_et.bundle.manifest import Bundle
    from edge_et.runtime.measure import machine_info

    spec = Bundle.load(bundle).require("reasoning")
    load_before = os.getloadavg()
    model = LlamaCppModel(model_path=str(spec.model_path), n_ctx=4096, n_threads=threads)
    try:
        prompts = _prompts(model)
        _sequence(model, prompts, "none")  # warm-up: pages the weights in
        alone = {s: _alone(model, prompts, s) for s in STRATEGIES}
        runs = []
        for trial in range(trials):
            order = STRATEGIES[trial % 3 :] + STRATEGIES[: trial % 3]
            runs.append({s: _sequence(model, prompts, s) for s in order})
            print(
                f"trial {trial + 1}/{trials}: "
                + ", ".join(f"{s} {runs[-1][s]['prefill_s']:.2f} s" for s in STRATEGIES),
                flush=True,
            )
    finally:
        model.close()
    summary = {}
    for s in STRATEGIES:
        summary[s] = {
            "prefill_s_median": statistics.median(r[s]["prefill_s"] for r in runs),
            "ratio_to_none_median": statistics.median(
                r[s]["prefill_s"] / r["none"]["prefill_s"] for r in runs
            ),
            "reused_tokens": runs[0][s]["reused_tokens"],
            "texts_equal_alone": sum(a == b for r in runs for a, b in zip(r[s]["texts"], alone[s])),
            "texts_equal_none": sum(
                a == b for r in runs for a, b in zip(r[s]["texts"], r["none"]["texts"])
            ),
            "texts": len(prompts) * trials,
        }
    return {
        "bundle": str(bundle),
        "model": spec.model,
        "threads": threads,
        "trials": trials,
        "prompts": len(prompts),
        "greedy_tokens": GREEDY_TOKENS,
        "machine": machine_info(threads),
        "load_before": load_before,
        "summary": summary,
        "prefill_s": {s: [r[s]["prefill_s"] for r in runs] for s in STRATEGIES},
    }


def report(result: dict) -> str:
    rows = [
        "| strategy | prefill of 9 prompts (median) | vs none | tokens reused | "
        "texts equal to a fresh start (same strategy) | texts equal to none |",
        "|---|---|---|---|---|---|",
    ]
    for s, v in result["summary"].items():
        rows.append(
            f"| {s} | {v['prefill_s_median']:.2f} s | {v['ratio_to_none_median']:.2f}x | "
            f"{v['reused_tokens']} | {v['texts_equal_alone']}/{v['texts']} | "
            f"{v['texts_equal_none']}/{v['texts']} |"
        )
    load = ", ".join(f"{x:.2f}" for x in result["load_before"])
    after = ", ".join(f"{x:.2f}" for x in result["load_after"])
    return (
        f"# Head reuse: cost and saving (benchmarks/head_reuse.py)\n\n"
        f"{result['model']} (pretrained, Q4_K_M), {result['threads']} threads, "
        f"{result['trials']} interleaved trials of {result['prompts']} reasoning prompts "
        f"(3 descriptions x 3 questions); {result['machine'].get('cpu', '')}; "
        f"load average before {load}, after {after}.\n\n" + "\n".join(rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "bundles" / "default")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    result = measure(args.bundle, args.trials, args.threads)
    result["load_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "head_reuse.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "head_reuse.md").write_text(report(result))
    print(report(result))


if __name__ == "__main__":
    main()
