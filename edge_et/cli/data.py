"""`edge-et data`: training data for perception models.

`extract-tuning` makes visual-extraction-tuning targets with a teacher bundle; `scenes` writes
the generated scene splits the micro perception model trains and is scored on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edge_et.cli.export import _toolchain  # imports an export module, or names the extra to install
from edge_et.cli.distributed import (
    RayCpusOpt,
    RayImagesOpt,
    RayOpt,
    RayPerceptionOpt,
    RayReasoningOpt,
    ray_settings,
    targets_on_ray,
)
from edge_et.cli.shared import err, out
from edge_et.core.devices import DEVICE_HELP

data_app = typer.Typer(no_args_is_help=True, help="Make training data for perception models.")


@data_app.command("extract-tuning")
def extract_tuning(
    teacher: Path = typer.Option(..., "--teacher", help="Teacher bundle: its VLM writes targets, its LLM statements."),
    source: Path = typer.Option(..., "--in", help='JSONL of {"image", "question", "answer", "id"?} (eval format works too).'),
    out_file: Path = typer.Option(..., "--out", "-o", help="Targets JSONL; ids already there are skipped (resume)."),
    seed: int = typer.Option(0, help="Base seed (decoding is greedy unless the bundle says otherwise)."),
    statement_model: str = typer.Option("reasoning", help="Who writes the statements: reasoning | perception (text only)."),
    chunk: int = typer.Option(16, min=1, help="Pairs per step-1/step-2 round (swap residency loads each model once per round)."),
    statement_tokens: int = typer.Option(128, min=1, help="Token limit of a statement."),
    target_tokens: int = typer.Option(1024, min=1, help="Token limit of a description."),
    residency: str = typer.Option("auto", help="auto (the memory plan decides) | co-resident | swap."),
    mem_budget: Optional[str] = typer.Option(None, "--mem-budget", help="Memory budget (6GB, 512MiB, bytes)."),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads (default: all cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    ray: Optional[str] = RayOpt, ray_cpus: Optional[int] = RayCpusOpt, ray_images: str = RayImagesOpt,
    ray_perception_actors: Optional[int] = RayPerceptionOpt, ray_reasoning_actors: Optional[int] = RayReasoningOpt,
) -> None:
    """The paper's two-step recipe: QA pair -> statement (LLM), image + statement -> description (VLM)."""
    from dataclasses import asdict, replace

    from edge_et.cli.render.eval import progress_bar
    from edge_et.eval import extract_tuning as tuning
    from edge_et.runtime.api import open_pipeline

    on_ray = ray_settings(ray, ray_cpus, ray_images, ray_perception_actors, ray_reasoning_actors)
    pairs, bad = tuning.read_pairs(source)
    remaining = len({pair.id for pair in pairs} - tuning.done_ids(out_file))
    # No mode to check: make_targets asks for the roles it needs.
    with open_pipeline(teacher, mem_budget=mem_budget, device=device, residency=residency,
                       threads=threads) as pipeline, \
            progress_bar(err, "targets", remaining) as advance:
        steps = dict(seed=seed, statement_role=statement_model, progress=advance,
                     statement_decoding=replace(tuning.STATEMENT_DECODING, max_tokens=statement_tokens),
                     target_decoding=replace(tuning.TARGET_DECODING, max_tokens=target_tokens))
        summary = targets_on_ray(pipeline, pairs, out_file, on_ray, threads, steps) if on_ray else \
            tuning.make_targets(pipeline, pairs, out_file, chunk=chunk, **steps)
    summary.bad_lines = len(bad)
    if as_json:
        print(json.dumps(asdict(summary) | {"bad_line_reasons": bad[:5]}))
        return
    out.print(f"targets: {summary.written} written, {summary.skipped} already done, {summary.failed} failed, "
              f"{summary.bad_lines} unusable lines, {summary.model_loads} model loads -> {out_file}",
              highlight=False, markup=False, soft_wrap=True)
    for reason in bad[:5] + summary.failures:
        err.print(f"  {reason}", highlight=False, markup=False)


@data_app.command("scenes")
def scenes(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for train.jsonl, heldout.jsonl and images/."),
    train: int = typer.Option(2000, "--train", min=0, help="Train examples, seed 0, with the three training forms (0: none)."),
    heldout: int = typer.Option(500, "--heldout", min=1, help="Held-out examples, seed 1."),
) -> None:
    """The seeded generated scenes the micro perception model trains and is scored on, in the eval format."""
    forms = _toolchain("scenes.forms")
    if train:
        out.print(str(forms.write_split(out_dir, "train", forms.TRAIN_SEED, train, forms=True)),
                  highlight=False, markup=False, soft_wrap=True)
    out.print(str(forms.write_split(out_dir, "heldout", forms.HELDOUT_SEED, heldout)),
              highlight=False, markup=False, soft_wrap=True)
