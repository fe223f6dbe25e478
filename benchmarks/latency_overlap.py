"""Does overlapping the stages pay on this machine? The reasoner's load and its fixed prompt
prefix, prepared while the perception model decodes, against one after the other.

    nice -n 5 python -m benchmarks.latency_overlap --trials 3

The paper pair (RANDOM weights, benchmarks.bench_configs, cached). One trial is the part of a
run the overlap could shorten: the extraction's decode (128 greedy tokens) and the reasoner
made ready (loaded from the page cache, its fixed prefix evaluated: the chat template and
instruction up to the description, what prefix reuse keeps). The extraction prompt is the
paper's, text only: the picture's encode and image prefill come before the decode in both
modes and cannot overlap with the reasoner's preparation in this design, and on the shared
2-core machine they took minutes per trial. Decode therefore runs at a short context
(the extraction prompt alone instead of ~1,550 tokens with the picture), slightly faster
than after a picture.

- `sequential`: the extraction, then the reasoner's load and prefix (what edge-et does).
- `overlapped`: the reasoner's load and prefix in a thread started when the extraction's
  decode begins (after its image prefill), joined after the extraction.

Both share the threads edge-et uses (all usable cores, for each model), interleaved
(sequential first, then overlapped first, ...) so other processes' load hits both alike.
Writes `overlap` into benchmarks/results/latency.json and re-renders latency.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

from benchmarks.latency import RESULTS, paper_pair, say

EXTRACT_TOKENS = 128
MODES = ("sequential", "overlapped")


def fixed_prefix(bundle, model) -> str:
    """The reasoning prompt's text before the description: the same for every request."""
    from edge_et.core import prompts
    from edge_et.core.chat import render_user_turn
    from edge_et.core.images import SAMPLE_QUESTION

    mark = "\x00DESCRIPTION\x00"
    request = prompts.reasoning_prompt(
        mark,
        SAMPLE_QUESTION,
        step_by_step=True,
        prompts=prompts.PromptSet.from_overrides(bundle.prompts),
    )
    text = render_user_turn(
        model.chat_template,
        request,
        enable_thinking=True,
        bos_text=model.bos_text,
        eos_text=model.eos_text,
    )
    return text.split(mark)[0]


def prepare_reasoner(bundle, into: dict) -> None:
    from edge_et.backends.llama_cpp.model import LlamaCppModel
    from edge_et.runtime.plan import requested_ctx

    started = time.perf_counter()
    spec = bundle.require("reasoning")
    model = LlamaCppModel(model_path=str(spec.model_path), n_ctx=requested_ctx(spec))
    loaded = time.perf_counter()
    head = fixed_prefix(bundle, model)
    stats = model.start_with_heads(prompt=head, heads=[head])
    into.update(
        model=model,
        load_s=loaded - started,
        prefix_s=time.perf_counter() - loaded,
        prefix_tokens=stats.prompt_tokens,
    )


def trial(bundle, perception, prompt: str, mode: str) -> dict:
    from edge_et.core.decoding import Sampling
    from edge_et.runtime.generation import generate

    reasoner: dict = {}
    started = time.perf_counter()
    prompt_tokens = perception.start(prompt=prompt).prompt_tokens
    worker = threading.Thread(target=prepare_reasoner, args=(bundle, reasoner))
    if mode == "overlapped":
        worker.start()
    decode_started = time.perf_counter()
    out = generate(perception, sampling=Sampling(), max_tokens=EXTRACT_TOKENS, ignore_eos=True)
    extract_done = time.perf_counter()
    if mode == "sequential":
        worker.start()
    worker.join()
    done = time.perf_counter()
    reasoner.pop("model").close()
    return {
        "mode": mode,
        "total_s": done - started,
        "extract_s": extract_done - started,
        "decode_s": extract_done - decode_started,
        "extract_prompt_tokens": prompt_tokens,
        "decode_tok_s": out.stats.decode_tok_s,
        "after_extract_s": done - extract_done,
        **reasoner,
    }


def run(trials: int) -> dict:
    from edge_et.backends.llama_cpp.model import LlamaCppModel
    from edge_et.bundle.manifest import Bundle
    from edge_et.core import prompts
    from edge_et.core.chat import render_user_turn
    from edge_et.runtime.plan import requested_ctx

    bundle = Bundle.load(paper_pair())
    spec = bundle.require("perception")
    perception = LlamaCppModel(model_path=str(spec.model_path), n_ctx=requested_ctx(spec))
    content = prompts.extraction_prompt("the details")
    prompt = render_user_turn(
        perception.chat_template,
        content,
        bos_text=perception.bos_text,
        eos_text=perception.eos_text,
    )
    runs = []
    try:
        say("overlap: warm-up")
        trial(bundle, perception, prompt, "sequential")
        for index in range(trials):
            pair = {}
            for mode in MODES if index % 2 == 0 else MODES[::-1]:
                say(f"overlap: trial {index + 1}/{trials}, {mode}")
                pair[mode] = trial(bundle, perception, prompt, mode)
                say(
                    f"  total {pair[mode]['total_s']:.1f} s, decode {pair[mode]['decode_tok_s']:.1f} tok/s"
                )
            runs.append(pair)
    finally:
        perception.close()
    return {
        "bundle": str(paper_pair()),
        "trials": runs,
        "summary": summarize(runs),
        "load_average_at_end": list(os.getloadavg()),
    }


def summarize(runs: list[dict]) -> dict:
    out = {}
    for metric in ("total_s", "extract_s", "decode_tok_s", "after_extract_s", "load_s", "prefix_s"):
        medians = {m: statistics.median(r[m][metric] for r in runs) for m in MODES}
        ratio = statistics.median(r["overlapped"][metric] / r["sequential"][metric] for r in runs)
        out[metric] = medians | {"ratio": ratio}
    out["prefix_tokens"] = runs[0]["sequential"]["prefix_tokens"]
    out["extract_prompt_tokens"] = runs[0]["sequential"]["extract_prompt_tokens"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args(argv)
    from benchmarks.latency_report import write_markdown
    from edge_et.runtime.measure import machine_info

    saved = RESULTS / "latency.json"
    report = json.loads(saved.read_text()) if saved.exists() else {}
    started_load = list(os.getloadavg())
    report["overlap"] = run(args.trials) | {
        "machine": machine_info(),
        "load_average_at_start": started_load,
    }
    saved.write_text(json.dumps(report, indent=1, default=str) + "\n")
    write_markdown(report, RESULTS / "latency.md")
    say(f"saved {saved}")


if __name__ == "__main__":
    main()
