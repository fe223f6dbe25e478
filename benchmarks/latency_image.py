"""The image path's llama.cpp settings on this machine: the sweep `edge_et.runtime.image_tuning`
runs, on the paper pair's perception model (LLaVA-OV: SigLIP so400m f16 + Qwen3-0.6B Q4_K_M,
RANDOM weights; speed is the architecture's).

    nice -n 5 python -m benchmarks.latency_image --trials 2
    nice -n 5 python -m benchmarks.latency_image --bundle PATH   # tune another bundle here

Candidates against llama.cpp's defaults, interleaved, medians and per-trial ratios: the vision
encoder's flash attention and threads (image encode seconds), then on the chosen encoder the
language model's n_batch / n_ubatch and flash attention (seconds of the prefill of a prompt
that is mostly the picture's image tokens). The chosen settings are saved in the bundle's
speed profile for this device (the pipeline then uses them). Writes `image_path` into
benchmarks/results/latency.json and re-renders latency.md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from benchmarks.latency import RESULTS, paper_pair, say


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument(
        "--bundle",
        type=Path,
        help="a bundle with a llama.cpp perception model and mmproj (default: the paper pair)",
    )
    args = parser.parse_args(argv)
    from benchmarks.latency_report import write_markdown
    from edge_et.bundle.manifest import Bundle
    from edge_et.core.images import load_image, write_sample_image
    from edge_et.runtime.image_tuning import tune_image_path
    from edge_et.runtime.measure import machine_info

    picture = load_image(write_sample_image(Path("/tmp") / "edge-et-latency-sample.png"))
    started_load = list(os.getloadavg())
    bundle = args.bundle or paper_pair()
    record = tune_image_path(Bundle.load(bundle), picture, trials=args.trials, say=say)
    if args.bundle:  # another bundle's tuning is saved in its profile, not in the paper's table
        say(f"kept for {bundle}: {record['chosen']}")
        return
    saved = RESULTS / "latency.json"
    report = json.loads(saved.read_text()) if saved.exists() else {}
    report["image_path"] = record | {
        "machine": machine_info(),
        "load_average_at_start": started_load,
        "bundle": str(bundle),
    }
    saved.write_text(json.dumps(report, indent=1, default=str) + "\n")
    write_markdown(report, RESULTS / "latency.md")
    say(f"saved {saved}")


if __name__ == "__main__":
    main()
