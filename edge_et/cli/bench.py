"""`edge-et bench`: per-stage latency and memory on this device (the work is in cli/render/bench.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edge_et.cli.shared import BundleOpt, err, out


def bench(
    bundle: Path = BundleOpt,
    against: Optional[Path] = typer.Option(None, "--against", help="A second bundle (e.g. the ONNX export of the same models), benched side by side in the same run."),
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="Picture to bench with (default: the sample picture)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of pictures, rotated across trials."),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, help="Timed trials after the warm-up (default 5; --quick: 1)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, help="Untimed warm-up trials (default 1; --quick: 0)."),
    quick: bool = typer.Option(False, "--quick", help="One trial, no warm-up, a curve of budgets 0 and --think-tokens, one round."),
    extract_tokens: int = typer.Option(128, "--extract-tokens", min=1, help="Tokens the extraction generates (EOS ignored)."),
    think_tokens: int = typer.Option(256, "--think-tokens", min=0, help="Think budget (instruct reasoners: tokens before the answer)."),
    answer_tokens: int = typer.Option(32, "--answer-tokens", min=1, help="Tokens after </think>."),
    direct_tokens: int = typer.Option(16, "--direct-tokens", min=1, help="Tokens of the direct VLM answer."),
    budgets: Optional[str] = typer.Option(None, "--budgets", help="Think budgets of the latency curve ('none': no curve; default: 0 and --think-tokens x 1, 4, 16)."),
    curve_trials: Optional[int] = typer.Option(None, "--curve-trials", min=1, help="Runs per budget of the curve (default: min(3, trials))."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (default: all cores)."),
    residency: str = typer.Option("co-resident", help="co-resident | swap (free perception before reasoning)."),
    bare: bool = typer.Option(True, "--bare/--no-bare", help="Run bare llama-cpp-python beside edge-et (overhead ratio)."),
    direct: bool = typer.Option(True, "--direct/--no-direct", help="Run the direct VLM answer beside Extract+Think."),
    bandwidth_mib: int = typer.Option(256, "--bandwidth-mib", min=0, help="Array size of the memory-bandwidth probe (0: skip)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed of trial 0 (trial i uses seed + i)."),
    out_file: Optional[Path] = typer.Option(None, "--out", "-o", help="Report JSON (default: ./edge-et-bench-<bundle>.json)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a stacked per-stage bar chart (PNG; needs matplotlib)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Per-stage latency and memory on this device, beside bare llama.cpp, the direct VLM and the bandwidth limit."""
    from edge_et.bench.settings import fitted_defaults
    from edge_et.cli.render.bench import bench_command, parse_budgets

    fitted = fitted_defaults(think_tokens=think_tokens, trials=trials, warmup=warmup, quick=quick,
                             budgets=parse_budgets(budgets) if budgets is not None else None,
                             curve_trials=curve_trials)
    bench_command(bundle=bundle, against=against, image=image, images=images, out=out_file, plot=plot, as_json=as_json,
                  console=out, err=err, extract_tokens=extract_tokens, think_tokens=think_tokens,
                  answer_tokens=answer_tokens, direct_tokens=direct_tokens, **fitted, n_threads=threads,
                  residency=residency, bare=bare, direct=direct, bandwidth_mib=bandwidth_mib, seed=seed)
