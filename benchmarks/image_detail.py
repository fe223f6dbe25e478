"""`image_detail` low vs high: what the perception stage's first token costs, per level.

    nice -n 5 python -m benchmarks.image_detail --trials 3

On a 1024x768 picture, the extraction's first token (image encode + prefill + one decode step)
at `high` (each model's own tiling) and `low` (one cheap look: docs/serve.md, image detail),
interleaved high, low, high, low ... so that a machine's drift hits both alike. Embedding cache
off: every trial encodes. Two perception models:

- the paper pair's: LLaVA-OneVision (SigLIP so400m-patch14-384 + Qwen3-0.6B, Q4_K_M, mmproj
  f16), RANDOM full-size weights (speed is the architecture's, not the weights'); low = the one
  global view, high = anyres_max_9;
- the demo bundle's trained micro Idefics3 (models/bundles/default): low = no tiling.

Writes benchmarks/results/image_detail.{json,md}, with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from benchmarks.bench_configs import CONFIGS, built_once, models_root, recipe_key, say
from benchmarks.latency import DEFAULT_BUNDLE, RESULTS

QUESTION = "What is written on the sign, and where is it?"
SIZE = (1024, 768)


def paper_perception() -> Path:
    """The paper pair's perception model alone (random full-size weights, Q4_K_M)."""
    from export.pipeline import export_gguf
    from export.tiny import checkpoints as tiny

    arch, shape = next(c for c in CONFIGS if c.name == "paper-0.6b+1.7b").perception
    target = models_root() / f"paper-0.6b-perception-{recipe_key(arch, shape, 'Q4_K_M')}"

    def build(scratch: Path) -> None:
        say(f"building random {shape} ({arch}) in bf16, then Q4_K_M")
        hf = tiny.build(arch, scratch / "hf", seed=0, shape=shape)
        export_gguf(
            out=scratch / "bundle",
            perception=hf,
            quant="Q4_K_M",
            validate=False,
            name="paper-0.6b-perception",
            step=say,
        )
        import shutil

        shutil.rmtree(scratch / "hf")

    return built_once(target, build)


def picture():
    """A 1024x768 picture with shapes and text (its content does not change the cost)."""
    from PIL import Image, ImageDraw

    from edge_et.core.images import load_pil_image

    image = Image.new("RGB", SIZE, (235, 235, 228))
    draw = ImageDraw.Draw(image)
    draw.rectangle((80, 90, 480, 420), fill=(40, 150, 60))
    draw.ellipse((560, 200, 900, 540), fill=(200, 40, 40))
    draw.text((120, 600), "EXIT 24  OPEN 9-17", fill=(10, 10, 10))
    return load_pil_image(image, name="1024x768")


def measure(bundle_path: Path, trials: int, threads: int | None) -> dict:
    """Interleaved trials of the first extraction token at each level: medians and each trial."""
    import edge_et
    from edge_et.bundle.manifest import Bundle

    bundle = Bundle.load(bundle_path)
    bundle.decoding = {**bundle.decoding, "extract": {"max_tokens": 1}}  # the first token only
    # anyres_max_9 on 1024x768 is about 4,900 tokens: more than the default 4,096 context
    bundle.perception.n_ctx = max(bundle.perception.n_ctx or 0, 8192)
    image = picture()
    runs: dict[str, list[dict]] = {"high": [], "low": []}
    with edge_et.open_pipeline(bundle, threads=threads, image_cache_bytes=0) as pipeline:
        pipeline.perceive(image, QUESTION, edge_et.RunOptions(mode="extract", seed=0))  # load, warm
        for trial in range(trials):
            for detail in ("high", "low"):
                result = pipeline.perceive(
                    image, QUESTION, edge_et.RunOptions(mode="extract", seed=0, image_detail=detail)
                )
                stats = result.stages["extract"]
                run = {
                    "encode_s": stats.image_encode_s,
                    "prefill_s": stats.prefill_s,
                    "first_token_s": stats.image_encode_s + stats.prefill_s + stats.decode_s,
                    "prompt_tokens": stats.prompt_tokens,
                }
                runs[detail].append(run)
                say(
                    f"{bundle.name} trial {trial + 1} {detail}: "
                    + ", ".join(
                        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in run.items()
                    )
                )
    medians = {
        detail: {
            key: statistics.median(run[key] for run in trials_)
            for key in ("encode_s", "prefill_s", "first_token_s", "prompt_tokens")
        }
        for detail, trials_ in runs.items()
    }
    ratios = [
        low["first_token_s"] / high["first_token_s"] for high, low in zip(runs["high"], runs["low"])
    ]
    return {
        "bundle": str(bundle_path),
        "name": bundle.name,
        "medians": medians,
        "trials": runs,
        "low_over_high_first_token": {"median": statistics.median(ratios), "per_trial": ratios},
    }


def write_markdown(report: dict, path: Path) -> None:
    lines = [
        "# `image_detail`: low vs high, extraction first token",
        "",
        f"`python -m benchmarks.image_detail --trials {report['trials']}`; a 1024x768 picture, "
        "embedding cache off, high and low interleaved; medians. First token = image encode + "
        "prefill + one decode step of the perception model. "
        f"Load average {report['load_average_before']} before, {report['load_average_after']} after "
        f"({report['machine']}).",
        "",
        "| perception model | detail | image tokens + prompt | encode s | prefill s | first token s | low / high |",
        "|---|---|---|---|---|---|---|",
    ]
    for part in report["bundles"]:
        ratio = part["low_over_high_first_token"]["median"]
        for detail in ("high", "low"):
            m = part["medians"][detail]
            lines.append(
                f"| {part['label']} | {detail} | {m['prompt_tokens']:.0f} | {m['encode_s']:.2f} | "
                f"{m['prefill_s']:.2f} | {m['first_token_s']:.2f} | "
                f"{f'{ratio:.3f}' if detail == 'low' else ''} |"
            )
    lines += [
        "",
        "The demo's micro Idefics3 encoder takes 128-pixel pictures and does not tile "
        "(`clip.vision.preproc_image_size` = image size = 128): one view at either level, so "
        "`low` changes nothing there. The paper's LLaVA-OneVision is where `low` matters: "
        "anyres_max_9 cuts 1024x768 into a 2x3 grid plus the global view (7 SigLIP encodes, "
        "4,725 image tokens); `low` encodes the global view alone (729 image tokens).",
    ]
    lines += [
        "",
        "Per-trial low/high ratios: "
        + "; ".join(
            f"{p['label']}: {', '.join(f'{r:.3f}' for r in p['low_over_high_first_token']['per_trial'])}"
            for p in report["bundles"]
        ),
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--only", choices=("paper", "demo"))
    parser.add_argument("--demo", type=Path, default=DEFAULT_BUNDLE, help="the demo bundle folder")
    args = parser.parse_args(argv)
    from edge_et.runtime.measure import machine_info

    machine = machine_info()
    before = [round(x, 2) for x in os.getloadavg()]
    parts = []
    if args.only in (None, "paper"):
        parts.append(
            measure(paper_perception(), args.trials, args.threads)
            | {"label": "paper: LLaVA-OV SigLIP + Qwen3-0.6B (random)"}
        )
    if args.only in (None, "demo") and args.demo.exists():
        parts.append(
            measure(args.demo, args.trials, args.threads)
            | {"label": "demo: micro Idefics3 (trained)"}
        )
    report = {
        "trials": args.trials,
        "size": SIZE,
        "bundles": parts,
        "load_average_before": before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": f"{machine.get('cpu', '?')}, {os.cpu_count()} cores",
    }
    (RESULTS / "image_detail.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    write_markdown(report, RESULTS / "image_detail.md")
    say(f"saved {RESULTS / 'image_detail.md'}")


if __name__ == "__main__":
    main()
