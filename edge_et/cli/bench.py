"""`edge-et bench`: per-stage latency and memory on this device (the tables and charts are
cli/render/bench.py's)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edge_et.cli.render.bench import (
    plot_comparison,
    plot_report,
    render_comparison,
    render_report,
    save_json,
)
from edge_et.cli.shared import BundleOpt, err, out
from edge_et.errors import InputError


def bench(
    bundle: Path = BundleOpt,
    against: Path | None = typer.Option(
        None,
        "--against",
        help="A second bundle (e.g. the ONNX export of the same models), benched side by side in the same run.",
    ),
    image: Path | None = typer.Option(
        None, "--image", "-i", help="Picture to bench with (default: the sample picture)."
    ),
    images: Path | None = typer.Option(
        None, "--images", help="Folder of pictures, rotated across trials."
    ),
    trials: int | None = typer.Option(
        None, "--trials", min=1, help="Timed trials after the warm-up (default 5; --quick: 1)."
    ),
    warmup: int | None = typer.Option(
        None, "--warmup", min=0, help="Untimed warm-up trials (default 1; --quick: 0)."
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="One trial, no warm-up, a curve of budgets 0 and --think-tokens, one round.",
    ),
    extract_tokens: int = typer.Option(
        128, "--extract-tokens", min=1, help="Tokens the extraction generates (EOS ignored)."
    ),
    think_tokens: int = typer.Option(
        256,
        "--think-tokens",
        min=0,
        help="Think budget (instruct reasoners: tokens before the answer).",
    ),
    answer_tokens: int = typer.Option(32, "--answer-tokens", min=1, help="Tokens after </think>."),
    direct_tokens: int = typer.Option(
        16, "--direct-tokens", min=1, help="Tokens of the direct VLM answer."
    ),
    budgets: str | None = typer.Option(
        None,
        "--budgets",
        help="Think budgets of the latency curve ('none': no curve; default: 0 and --think-tokens x 1, 4, 16).",
    ),
    curve_trials: int | None = typer.Option(
        None,
        "--curve-trials",
        min=1,
        help="Runs per budget of the curve (default: min(3, trials)).",
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads (default: all cores)."
    ),
    gpu_layers: int = typer.Option(
        0,
        "--gpu-layers",
        min=-1,
        help="Layers of each model on the GPU (llama.cpp built with CUDA or Metal; -1: all). The report's machine names the GPU.",
    ),
    residency: str = typer.Option(
        "co-resident", help="co-resident | swap (free perception before reasoning)."
    ),
    bare: bool = typer.Option(
        True, "--bare/--no-bare", help="Run bare llama-cpp-python beside edge-et (overhead ratio)."
    ),
    direct: bool = typer.Option(
        True, "--direct/--no-direct", help="Run the direct VLM answer beside Extract+Think."
    ),
    bandwidth_mib: int = typer.Option(
        256, "--bandwidth-mib", min=0, help="Array size of the memory-bandwidth probe (0: skip)."
    ),
    seed: int = typer.Option(0, "--seed", help="Sampling seed of trial 0 (trial i uses seed + i)."),
    out_file: Path | None = typer.Option(
        None, "--out", "-o", help="Report JSON (default: ./edge-et-bench-<bundle>.json)."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write a stacked per-stage bar chart (PNG; needs matplotlib)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Per-stage latency and memory on this device, beside bare llama.cpp, the direct VLM and the bandwidth limit."""
    from edge_et.bench.settings import fitted_defaults

    fitted = fitted_defaults(
        think_tokens=think_tokens,
        trials=trials,
        warmup=warmup,
        quick=quick,
        budgets=parse_budgets(budgets) if budgets is not None else None,
        curve_trials=curve_trials,
    )
    bench_command(
        bundle=bundle,
        against=against,
        image=image,
        images=images,
        out=out_file,
        plot=plot,
        as_json=as_json,
        console=out,
        err=err,
        extract_tokens=extract_tokens,
        think_tokens=think_tokens,
        answer_tokens=answer_tokens,
        direct_tokens=direct_tokens,
        **fitted,
        n_threads=threads,
        gpu_layers=gpu_layers,
        residency=residency,
        bare=bare,
        direct=direct,
        bandwidth_mib=bandwidth_mib,
        seed=seed,
    )


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def parse_budgets(text: str) -> tuple[int, ...]:
    """ "0,256,1024" -> (0, 256, 1024); "" or "none" -> () (no curve)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        budgets = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(
            f"--budgets must be whole numbers separated by commas, got {text!r}"
        ) from None
    if any(b < 0 for b in budgets):
        raise InputError("--budgets must be >= 0")
    return budgets


def bench_images(image: Path | None, images: Path | None, scratch: Path) -> list[Path]:
    """The pictures to bench with: --image, every picture in --images, else the sample picture."""
    if image is not None and images is not None:
        raise InputError("give --image or --images, not both")
    if image is not None:
        return [image]
    if images is not None:
        if not images.is_dir():
            raise InputError(f"--images {images} is not a folder")
        found = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise InputError(f"--images {images} holds no pictures ({', '.join(IMAGE_SUFFIXES)})")
        return found
    from edge_et.core.images import write_sample_image

    return [write_sample_image(scratch / "sample.png")]


@contextmanager
def _progress(err: Console, weights: list[float]):
    """A progress bar over the bench's steps; each progress line starts the next step. The bar
    advances by each step's work (`step_weights`), so the ETA, from the measured speed over the
    whole run so far, holds when steps differ in size."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("step {task.fields[step]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        speed_estimate_period=24 * 3600,
    ) as progress:
        task = progress.add_task("bench", total=sum(weights), step=f"0/{len(weights)}")
        done = [0]

        def step(line: str) -> None:
            if done[0]:
                progress.advance(task, weights[min(done[0], len(weights)) - 1])
            done[0] += 1
            progress.update(task, description=line, step=f"{done[0]}/{len(weights)}")
            err.print(f"[dim]{line}[/]", highlight=False)

        yield step


def bench_command(
    *,
    bundle: Path,
    image: Path | None,
    images: Path | None,
    out: Path | None,
    plot: Path | None,
    as_json: bool,
    console: Console,
    err: Console,
    against: Path | None = None,
    **settings,
) -> dict:
    """What `edge-et bench` does: run, save the JSON, draw, print. Returns the report dict
    (with `against`: the comparison, {"reports": [...], "comparison": {...}})."""
    import tempfile

    from edge_et.bench.compare import comparison_steps, run_comparison
    from edge_et.bench.run import run_bench, step_weights
    from edge_et.bench.settings import BenchSettings
    from edge_et.bundle.manifest import Bundle

    loaded = [Bundle.load(b) for b in ([bundle] + ([against] if against else []))]
    fitted = BenchSettings(**settings)
    weights = [1.0] * comparison_steps(fitted) if against else step_weights(fitted)
    with tempfile.TemporaryDirectory() as scratch, _progress(err, weights) as step:
        pictures = bench_images(image, images, Path(scratch))
        if against:
            result = run_comparison(loaded, images=pictures, progress=step, **settings)
        else:
            result = run_bench(loaded[0], images=pictures, progress=step, **settings).to_dict()
    name = "-vs-".join(b.name for b in loaded)
    saved = save_json(result, out or Path(f"edge-et-bench-{name}.json"))
    if plot is not None:
        (plot_comparison if against else plot_report)(result, plot)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        (render_comparison if against else render_report)(console, result)
        console.print(f"saved {saved}" + (f" and {plot}" if plot else ""), highlight=False)
    return result
