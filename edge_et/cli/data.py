"""`edge-et data`: training data for perception models.

`extract-tuning` makes visual-extraction-tuning targets with a teacher bundle; `scenes` writes
the generated scene splits the micro perception model trains and is scored on.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer

from edge_et.cli.distributed import (
    RayCpusOpt,
    RayImagesOpt,
    RayOpt,
    RayPerceptionOpt,
    RayReasoningOpt,
    ray_settings,
    targets_on_ray,
)
from edge_et.cli.export import toolchain  # imports an export module, or names the extra to install
from edge_et.cli.shared import err, out
from edge_et.core.devices import DEVICE_HELP
from edge_et.errors import InputError

data_app = typer.Typer(no_args_is_help=True, help="Make training data for perception models.")


@data_app.command("extract-tuning")
def extract_tuning(
    teacher: Path = typer.Option(
        ..., "--teacher", help="Teacher bundle: its VLM writes targets, its LLM statements."
    ),
    source: Path = typer.Option(
        ..., "--in", help='JSONL of {"image", "question", "answer", "id"?} (eval format works too).'
    ),
    out_file: Path = typer.Option(
        ..., "--out", "-o", help="Targets JSONL; ids already there are skipped (resume)."
    ),
    seed: int = typer.Option(
        0, help="Base seed (decoding is greedy unless the bundle says otherwise)."
    ),
    statement_model: str = typer.Option(
        "reasoning", help="Who writes the statements: reasoning | perception (text only)."
    ),
    chunk: int = typer.Option(
        16,
        min=1,
        help="Pairs per step-1/step-2 round (swap residency loads each model once per round).",
    ),
    statement_tokens: int = typer.Option(128, min=1, help="Token limit of a statement."),
    target_tokens: int = typer.Option(1024, min=1, help="Token limit of a description."),
    residency: str = typer.Option(
        "auto", help="auto (the memory plan decides) | co-resident | swap."
    ),
    mem_budget: str | None = typer.Option(
        None, "--mem-budget", help="Memory budget (6GB, 512MiB, bytes)."
    ),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    threads: int | None = typer.Option(None, min=1, help="CPU threads (default: all cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    ray: str | None = RayOpt,
    ray_cpus: int | None = RayCpusOpt,
    ray_images: str = RayImagesOpt,
    ray_perception_actors: int | None = RayPerceptionOpt,
    ray_reasoning_actors: int | None = RayReasoningOpt,
) -> None:
    """The paper's two-step recipe: QA pair -> statement (LLM), image + statement -> description (VLM)."""
    from dataclasses import asdict, replace

    from edge_et.cli.render.eval import progress_bar
    from edge_et.core.signals import graceful
    from edge_et.eval import extract_tuning as tuning
    from edge_et.runtime.api import open_pipeline

    on_ray = ray_settings(ray, ray_cpus, ray_images, ray_perception_actors, ray_reasoning_actors)
    pairs, bad = tuning.read_pairs(source)
    remaining = len({pair.id for pair in pairs} - tuning.done_ids(out_file))
    # No mode to check: make_targets asks for the roles it needs.
    with (
        open_pipeline(
            teacher, mem_budget=mem_budget, device=device, residency=residency, threads=threads
        ) as pipeline,
        progress_bar(err, "targets", remaining) as advance,
    ):
        steps = dict(
            seed=seed,
            statement_role=statement_model,
            progress=advance,
            statement_decoding=replace(tuning.STATEMENT_DECODING, max_tokens=statement_tokens),
            target_decoding=replace(tuning.TARGET_DECODING, max_tokens=target_tokens),
        )
        # Ctrl-C or SIGTERM: the pair in hand is written (on Ray: the pairs already answered),
        # then the summary line below says how to continue.
        with graceful() as flag:
            steps["stop"] = lambda: flag.requested
            if on_ray:
                summary = targets_on_ray(pipeline, pairs, out_file, on_ray, threads, steps)
            else:
                summary = tuning.make_targets(pipeline, pairs, out_file, chunk=chunk, **steps)
    if flag.requested:
        err.print(
            f"stopped by {flag.name}: {summary.written} targets written to {out_file}; the same "
            f"command continues: {shlex.join(['edge-et', *sys.argv[1:]])}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(flag.exit_code)
    summary.bad_lines = len(bad)
    if as_json:
        print(json.dumps(asdict(summary) | {"bad_line_reasons": bad[:5]}))
        return
    out.print(
        f"targets: {summary.written} written, {summary.skipped} already done, {summary.failed} failed, "
        f"{summary.bad_lines} unusable lines, {summary.model_loads} model loads -> {out_file}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    for reason in bad[:5] + summary.failures:
        err.print(f"  {reason}", highlight=False, markup=False)


@data_app.command("scenes")
def scenes(
    out_dir: Path = typer.Option(
        ..., "--out", "-o", help="Folder for train.jsonl, heldout.jsonl and images/."
    ),
    train: int = typer.Option(
        2000,
        "--train",
        min=0,
        help="Train examples, seed 0, with the three training forms (0: none).",
    ),
    heldout: int = typer.Option(500, "--heldout", min=1, help="Held-out examples, seed 1."),
    stream: str = typer.Option(
        "classic",
        "--stream",
        help="classic | varied | mix (training renderers) | shifted (matplotlib, held out only: no train split).",
    ),
) -> None:
    """The seeded generated scenes the micro perception model trains and is scored on, in the eval format."""
    forms = toolchain("scenes.forms")
    if stream not in forms.EVAL_STREAMS:
        raise InputError(
            f"unknown --stream {stream!r}; choose one of: {', '.join(forms.EVAL_STREAMS)}"
        )
    if stream == "shifted":
        train = 0  # never trained on
    if train:
        out.print(
            str(
                forms.write_split(
                    out_dir, "train", forms.TRAIN_SEED, train, forms=True, stream=stream
                )
            ),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    seed = forms.SHIFTED_SEED if stream == "shifted" else forms.HELDOUT_SEED
    out.print(
        str(forms.write_split(out_dir, "heldout", seed, heldout, stream=stream)),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
