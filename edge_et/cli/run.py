"""`edge-et run`: one question about one image, or a JSONL batch of them."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from edge_et.cli.distributed import (
    RayCpusOpt,
    RayImagesOpt,
    RayOpt,
    RayPerceptionOpt,
    RayReasoningOpt,
    batch_runner,
    ray_settings,
)
from edge_et.cli.profiles import ProfileOpt
from edge_et.cli.render import result as render
from edge_et.cli.shared import BundleOpt, err, out, resume_command
from edge_et.core.devices import DEVICE_HELP
from edge_et.core.journal import json_line
from edge_et.errors import InputError


def run(
    bundle: Path = BundleOpt,
    image: Path | None = typer.Option(None, "--image", "-i", help="Image file."),
    question: str | None = typer.Option(
        None, "--question", "-q", help="The question (options A-D may follow on new lines)."
    ),
    batch: Path | None = typer.Option(
        None, "--batch", help='JSONL file, one {"image": ..., "question": ...} per line.'
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Batch results file (JSONL; default: stdout)."
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue a stopped --batch run: skip the lines already in --output, append the rest.",
    ),
    mode: str = typer.Option(
        "extract-think", help="extract-think | caption-think | direct | extract"
    ),
    hint: str | None = typer.Option(
        None,
        help="Extraction hint phrase; 'auto' asks the reasoning model; default: derived from the question.",
    ),
    think_budget: int | None = typer.Option(
        None, min=0, help="Thinking tokens before </think> is forced (thinking models)."
    ),
    answer_budget: int | None = typer.Option(
        None,
        min=1,
        help="Tokens allowed after </think> (thinking models) or after the answer cue (instruct models).",
    ),
    max_tokens: int | None = typer.Option(
        None, min=1, help="Token limit of a non-thinking reasoner."
    ),
    temperature: float | None = typer.Option(
        None, min=0.0, help="Reasoning temperature (0 = greedy)."
    ),
    seed: int | None = typer.Option(None, help="Seed for sampling; the same seed repeats a run."),
    stop: list[str] | None = typer.Option(
        None,
        "--stop",
        help="End the reply before this text (repeatable; the thought is never cut). A newline in bash: --stop $'\\n'.",
    ),
    json_schema: Path | None = typer.Option(
        None,
        "--json-schema",
        help="The reply is JSON under this schema (a file): the answer after the thought, or the perception text in extract/direct (llama.cpp bundles).",
    ),
    image_detail: str = typer.Option(
        "auto",
        "--image-detail",
        help="low (one cheap look: one view, or a small pixel cap) | high (the model's own tiling) | auto (the bundle's default: high).",
    ),
    speculative: str = typer.Option(
        "auto",
        "--speculative",
        help="Speculative decoding of the reasoning stage: auto (= off, by measurement) | off | lookup (n-grams of the prompt) | draft (the perception LM drafts; same vocabulary, co-resident).",
    ),
    residency: str = typer.Option(
        "auto", help="auto (the memory plan decides) | co-resident | swap."
    ),
    mem_budget: str | None = typer.Option(
        None,
        "--mem-budget",
        help="Memory budget (6GB, 512MiB, bytes); default: 80% of available memory.",
    ),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    threads: int | None = typer.Option(None, min=1, help="CPU threads (default: all cores)."),
    stream: bool = typer.Option(
        False, "--stream", help="Print reasoning tokens as they are generated."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    verify: bool = typer.Option(False, "--verify", help="Check model sha256 before loading."),
    deadline: float | None = typer.Option(
        None,
        "--deadline",
        help="Seconds a run may take: picks the think budget from this device's measured speed (measured once, then cached).",
    ),
    device_profile: str | None = ProfileOpt,
    ray: str | None = RayOpt,
    ray_cpus: int | None = RayCpusOpt,
    ray_images: str = RayImagesOpt,
    ray_perception_actors: int | None = RayPerceptionOpt,
    ray_reasoning_actors: int | None = RayReasoningOpt,
) -> None:
    """Answer a question about an image (or every line of a --batch file)."""
    from edge_et.core.images import load_image
    from edge_et.runtime.api import open_bundle, open_pipeline
    from edge_et.runtime.constraints import schema_file_constraint
    from edge_et.runtime.pipeline import RunOptions, check_image_detail, check_mode
    from edge_et.runtime.speculation import check_speculative
    from edge_et.runtime.stop_strings import check_stops

    check_mode(mode)
    check_image_detail(image_detail)
    constraint = schema_file_constraint(json_schema)
    check_speculative(speculative)
    stops = check_stops(stop)
    on_ray = ray_settings(ray, ray_cpus, ray_images, ray_perception_actors, ray_reasoning_actors)
    if on_ray is not None and batch is None:
        raise InputError("--ray answers a --batch FILE.jsonl; one question runs here")
    if (batch is None) == (question is None):
        raise InputError("give --question (with --image) for one run, or --batch FILE.jsonl")
    loaded = open_bundle(bundle, modes=[mode], verify=verify)
    if batch is None:
        if image is None:
            raise InputError("this mode needs an image (--image PATH)")
        if not question.strip():
            raise InputError("the question is empty")
        image = load_image(image)  # a bad picture is reported before any planning or loading
    # Planned before anything loads: a plan that cannot fit stops here with exit code 2.
    with open_pipeline(
        loaded,
        mem_budget=mem_budget,
        device=device,
        residency=residency,
        threads=threads,
        device_profile=device_profile,
    ) as pipeline:
        options = RunOptions(
            mode=mode,
            hint=hint,
            seed=seed,
            think_budget=think_budget,
            answer_budget=answer_budget,
            max_tokens=max_tokens,
            temperature=temperature,
            speculative=speculative,
            stop=stops or None,
            constraint=constraint,
            image_detail=image_detail,
        )
        pipeline.check_options(
            options
        )  # a schema its backend cannot apply: one line, nothing loaded
        chosen = None
        if deadline is not None:
            from edge_et.runtime.deadline import apply_deadline, describe_choice

            options, chosen = apply_deadline(
                loaded, options, deadline, n_threads=threads, device_profile=device_profile
            )
            err.print(describe_choice(chosen), highlight=False, markup=False)
        if not as_json:
            render.random_weight_warnings(err, loaded)
        _print_plan(pipeline.plan, as_json)
        if batch is not None:
            with batch_runner(on_ray, threads) as runner:
                _run_batch(pipeline, batch, output, options, as_json, resume, runner)
        else:
            _run_one(pipeline, image, question, options, stream, as_json, chosen)


def _print_plan(plan, as_json: bool) -> None:
    """The plan's decision and every degradation it applied, on stderr. With --json, one JSON
    line and only when the plan degraded something: stdout keeps only the result, and stderr
    stays empty (or one error line) for a plan that needed no compromise."""
    from edge_et.memory.scheduler import format_degradations

    if as_json:
        if not plan.degradations:
            return
        err.print(
            json.dumps(
                {
                    "plan": {
                        "decision": plan.decision,
                        "reason": plan.reason,
                        "degradations": plan.degradations,
                    }
                }
            ),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return
    err.print(f"plan: {plan.decision} ({plan.reason})", highlight=False, markup=False)
    for line in format_degradations(plan):
        err.print(line, highlight=False, markup=False)


def _run_one(
    pipeline, image, question, options, stream: bool, as_json: bool, deadline: dict | None = None
) -> None:
    sink = Console(stderr=as_json)
    if stream:
        options.on_reasoning_text = lambda text: sink.print(
            text, end="", markup=False, highlight=False
        )
        if not as_json:
            sink.rule("reasoning (streamed)")
    result = pipeline.run(image, question, options)
    result.deadline = deadline
    if stream:
        sink.print()
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        render.result(out, result, streamed=stream)


def _run_batch(
    pipeline, batch: Path, output: Path | None, options, as_json: bool, resume: bool, runner
) -> None:
    from edge_et.core.signals import graceful
    from edge_et.runtime.batch import read_batch
    from edge_et.runtime.resumable import BatchRun

    items = read_batch(batch)
    if output is None and resume:
        raise InputError("--resume needs --output FILE: the results file to continue")
    with graceful() as flag:
        if output is None:
            summary = runner(pipeline, items, options, _print_line, stop=lambda: flag.requested)
        else:
            prepared = BatchRun(pipeline, batch, items, options, output, resume=resume)
            with render.batch_progress(err, prepared.remaining, enabled=True) as advance:
                summary = prepared.run(advance, stop=lambda: flag.requested, runner=runner)
    _batch_summary(summary, as_json)
    if flag.requested:
        render.batch_stopped(err, summary, flag.name, output, resume_command())
        raise typer.Exit(flag.exit_code)


def _print_line(record: dict) -> None:
    print(json_line(record), flush=True)  # readable as soon as it is done


def _batch_summary(summary, as_json: bool) -> None:
    from dataclasses import asdict

    if as_json:
        err.print(json.dumps(asdict(summary)), highlight=False, soft_wrap=True)
    else:
        render.batch_summary(err, summary)
