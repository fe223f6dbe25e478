"""`edge-et eval`: score a bundle on multiple-choice visual QA; `eval convert` makes such files.

`eval` is a command and a group at once: its callback runs the evaluation when no
subcommand follows, so `edge-et eval --bundle B --data F` and `edge-et eval convert
easy-vqa --out F` both work. Each command validates, calls one library function, prints.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import typer

from edge_et.cli.distributed import (
    RayCpusOpt,
    RayImagesOpt,
    RayOpt,
    RayPerceptionOpt,
    RayReasoningOpt,
    batch_runner,
    ray_settings,
)
from edge_et.cli.shared import BUNDLE_HELP, err, out, resume_command
from edge_et.core.devices import DEVICE_HELP
from edge_et.errors import InputError

eval_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=True,
    help="Score a bundle on multiple-choice visual QA (JSONL); `convert` makes such files.",
)
convert_app = typer.Typer(no_args_is_help=True, help="Turn a public dataset into the eval format.")
eval_app.add_typer(convert_app, name="convert")


@eval_app.callback()
def evaluate(
    ctx: typer.Context,
    bundle: Path | None = typer.Option(None, "--bundle", "-b", help=BUNDLE_HELP),
    data: Path | None = typer.Option(
        None,
        "--data",
        "-d",
        help='JSONL: {"image", "question", "options", "answer", "category"?, "id"?} per line.',
    ),
    mode: list[str] | None = typer.Option(
        None,
        "--mode",
        help="extract-think (default) | caption-think | direct; repeat for a side-by-side table.",
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Only the first N usable questions."
    ),
    seed: int = typer.Option(0, help="Base seed; each question's seed derives from it and its id."),
    hint: str | None = typer.Option(
        None,
        help="Extraction hint for every question; 'auto' asks the reasoning model; default: derived from each question.",
    ),
    think_budget: int | None = typer.Option(
        None, min=0, help="Thinking tokens before </think> is forced."
    ),
    answer_budget: int | None = typer.Option(None, min=1, help="Tokens allowed after </think>."),
    max_tokens: int | None = typer.Option(
        None, min=1, help="Token limit of a non-thinking reasoner."
    ),
    temperature: float | None = typer.Option(
        None, min=0.0, help="Reasoning temperature (0 = greedy)."
    ),
    residency: str = typer.Option(
        "auto", help="auto (the memory plan decides) | co-resident | swap."
    ),
    mem_budget: str | None = typer.Option(
        None, "--mem-budget", help="Memory budget (6GB, 512MiB, bytes)."
    ),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    threads: int | None = typer.Option(None, min=1, help="CPU threads (default: all cores)."),
    predictions: Path | None = typer.Option(
        None, "--predictions", help="Also write every answer, scored, as JSONL."
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue a stopped run: score the answers already in --predictions, ask only the rest.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ray: str | None = RayOpt,
    ray_cpus: int | None = RayCpusOpt,
    ray_images: str = RayImagesOpt,
    ray_perception_actors: int | None = RayPerceptionOpt,
    ray_reasoning_actors: int | None = RayReasoningOpt,
) -> None:
    """Accuracy (95% Wilson interval) overall and per category, parse failures, latency per stage."""
    if ctx.invoked_subcommand is not None:
        return
    if bundle is None or data is None:
        raise InputError(
            "edge-et eval needs --bundle DIR|NAME and --data FILE.jsonl "
            "(or a subcommand: edge-et eval convert easy-vqa --out FILE.jsonl)"
        )
    from edge_et.eval.run import check_eval_modes, read_eval_file
    from edge_et.runtime.pipeline import RunOptions

    modes = check_eval_modes(mode or [])
    on_ray = ray_settings(ray, ray_cpus, ray_images, ray_perception_actors, ray_reasoning_actors)
    if resume and predictions is None:
        raise InputError("--resume needs --predictions FILE: the answers to continue from")
    dataset = read_eval_file(data, limit)
    options = RunOptions(
        hint=hint,
        think_budget=think_budget,
        answer_budget=answer_budget,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    report = _evaluate(
        bundle,
        dataset,
        modes,
        options,
        seed=seed,
        residency=residency,
        threads=threads,
        mem_budget=mem_budget,
        device=device,
        predictions=predictions,
        quiet=as_json,
        resume=resume,
        on_ray=on_ray,
    )
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        from edge_et.cli.render.eval import report_tables

        report_tables(out, report)


def _evaluate(
    bundle_dir: Path,
    dataset,
    modes,
    options,
    *,
    seed,
    residency,
    threads,
    mem_budget,
    device,
    predictions,
    quiet: bool,
    resume: bool,
    on_ray=None,
):
    from edge_et.cli.render import result as render
    from edge_et.cli.render.eval import progress_bar
    from edge_et.core.signals import graceful
    from edge_et.eval.resumable import EvalRun
    from edge_et.eval.run import evaluate as run_eval
    from edge_et.runtime.api import open_pipeline

    with ExitStack() as stack:
        pipeline = stack.enter_context(
            open_pipeline(
                bundle_dir,
                mem_budget=mem_budget,
                device=device,
                residency=residency,
                threads=threads,
                modes=modes,
            )
        )
        if not quiet:
            render.random_weight_warnings(err, pipeline.bundle)
            err.print(
                f"plan: {pipeline.plan.decision} ({pipeline.plan.reason})",
                highlight=False,
                markup=False,
            )
        runner = stack.enter_context(batch_runner(on_ray, threads))
        flag = stack.enter_context(graceful())
        stop = lambda: flag.requested  # noqa: E731
        prepared = (
            EvalRun(pipeline, dataset, modes, options, predictions, seed=seed, resume=resume)
            if predictions
            else None
        )
        total = prepared.remaining if prepared else len(dataset.items) * len(modes)
        advance = stack.enter_context(progress_bar(err, "eval", total))
        report = (
            prepared.run(advance, stop, runner=runner)
            if prepared
            else run_eval(
                pipeline,
                dataset,
                modes,
                options,
                seed=seed,
                progress=advance,
                stop=stop,
                runner=runner,
            )
        )
    if flag.requested:
        _stopped(flag, predictions)
    return report


def _stopped(flag, predictions: Path | None) -> None:
    again = (
        f"answers so far are in {predictions}; resume with: {resume_command()}"
        if predictions
        else "give --predictions FILE to make a run resumable"
    )
    err.print(f"stopped by {flag.name}: {again}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(flag.exit_code)


@convert_app.command("easy-vqa")
def convert_easy_vqa(
    out_file: Path = typer.Option(
        ..., "--out", "-o", help="JSONL to write; images go to <stem>_images/ beside it."
    ),
    seed: int = typer.Option(
        0, help="Seed of the distractors, their order and the --limit sample."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="A seeded sample of N questions (default: all 9,673)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """easy-VQA's test split (pip package easy-vqa==1.0) as multiple choice, distractors of the same type."""
    from edge_et.eval.data import convert_easy_vqa as convert

    summary = convert(out_file, seed=seed, limit=limit)
    if as_json:
        print(json.dumps(summary.to_dict()))
        return
    counts = ", ".join(f"{name} {n}" for name, n in summary.categories.items())
    out.print(
        f"wrote {summary.questions} questions ({counts}) over {summary.images} images to "
        f"{summary.out}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
