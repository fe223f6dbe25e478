"""The `edge-et` command line: each command parses its options and calls one library function."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from edge_et.cli.export import export_app
from edge_et.cli.render import result as render
from edge_et.core.devices import DEVICE_HELP
from edge_et.errors import EdgeEtError, InputError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Extract+Think on your device: a VLM extracts, an LLM thinks.")
out = Console()
err = Console(stderr=True)
app.add_typer(export_app, name="export")
from edge_et.cli import eval as cli_eval; cli_eval.register(app)  # noqa: E402,E702 - the eval and data sub-apps

BundleOpt = typer.Option(..., "--bundle", "-b", help="Bundle folder (holds bundle.json).")


@app.command()
def run(
    bundle: Path = BundleOpt,
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="Image file."),
    question: Optional[str] = typer.Option(None, "--question", "-q", help="The question (options A-D may follow on new lines)."),
    batch: Optional[Path] = typer.Option(None, "--batch", help='JSONL file, one {"image": ..., "question": ...} per line.'),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Batch results file (JSONL; default: stdout)."),
    mode: str = typer.Option("extract-think", help="extract-think | caption-think | direct | extract"),
    hint: Optional[str] = typer.Option(None, help="Extraction hint phrase; 'auto' asks the reasoning model; default: derived from the question."),
    think_budget: Optional[int] = typer.Option(None, min=0, help="Thinking tokens before </think> is forced (thinking models)."),
    answer_budget: Optional[int] = typer.Option(None, min=1, help="Tokens allowed after </think>."),
    max_tokens: Optional[int] = typer.Option(None, min=1, help="Token limit of a non-thinking reasoner."),
    temperature: Optional[float] = typer.Option(None, min=0.0, help="Reasoning temperature (0 = greedy)."),
    seed: Optional[int] = typer.Option(None, help="Seed for sampling; the same seed repeats a run."),
    residency: str = typer.Option("auto", help="auto (the memory plan decides) | co-resident | swap."),
    mem_budget: Optional[str] = typer.Option(None, "--mem-budget", help="Memory budget (6GB, 512MiB, bytes); default: 80% of available memory."),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads (default: all cores)."),
    stream: bool = typer.Option(False, "--stream", help="Print reasoning tokens as they are generated."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    verify: bool = typer.Option(False, "--verify", help="Check model sha256 before loading."),
    deadline: Optional[float] = typer.Option(None, "--deadline", help="Seconds a run may take: picks the think budget from this device's measured speed (measured once, then cached)."),
) -> None:
    """Answer a question about an image (or every line of a --batch file)."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.core.images import load_image
    from edge_et.memory.scheduler import require_runnable
    from edge_et.runtime.pipeline import Pipeline, RunOptions, check_bundle_for_mode, check_mode
    from edge_et.runtime.plan import plan_bundle

    check_mode(mode)
    if (batch is None) == (question is None):
        raise InputError("give --question (with --image) for one run, or --batch FILE.jsonl")
    loaded = Bundle.load(bundle, verify_checksums=verify)
    check_bundle_for_mode(loaded, mode)
    if batch is None:
        if image is None:
            raise InputError("this mode needs an image (--image PATH)")
        if not question.strip():
            raise InputError("the question is empty")
        image = load_image(image)  # a bad picture is reported before any planning or loading
    # Planned before anything loads: a plan that cannot fit stops here with exit code 2.
    memory_plan = require_runnable(plan_bundle(loaded, mem_budget=mem_budget, device=device))
    options = RunOptions(mode=mode, hint=hint, seed=seed, think_budget=think_budget,
                         answer_budget=answer_budget, max_tokens=max_tokens, temperature=temperature)
    chosen = None
    if deadline is not None:
        from edge_et.runtime.deadline import apply_deadline, describe_choice

        options, chosen = apply_deadline(loaded, options, deadline, n_threads=threads)
        err.print(describe_choice(chosen), highlight=False, markup=False)
    if not as_json:
        render.random_weight_warnings(err, loaded)
        err.print(f"plan: {memory_plan.decision} ({memory_plan.reason})", highlight=False, markup=False)
    with Pipeline(loaded, n_threads=threads, plan=memory_plan, device=device,
                  residency=None if residency == "auto" else residency) as pipeline:
        if batch is not None:
            _run_batch(pipeline, batch, output, options, as_json)
        else:
            _run_one(pipeline, image, question, options, stream, as_json, chosen)


def _run_one(pipeline, image, question, options, stream: bool, as_json: bool,
             deadline: dict | None = None) -> None:
    sink = Console(stderr=as_json)
    if stream:
        options.on_reasoning_text = lambda text: sink.print(text, end="", markup=False, highlight=False)
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


def _run_batch(pipeline, batch: Path, output: Optional[Path], options, as_json: bool) -> None:
    from dataclasses import asdict

    from edge_et.runtime.batch import read_batch, run_batch

    items = read_batch(batch)
    target = open(output, "w", encoding="utf-8") if output else sys.stdout

    def write(record: dict) -> None:
        target.write(json.dumps(record, ensure_ascii=False) + "\n")
        target.flush()  # each result is readable as soon as it is done
    try:
        with render.batch_progress(err, len(items), enabled=output is not None) as advance:
            summary = run_batch(pipeline, items, options, write, advance)
    finally:
        if output:
            target.close()
    if as_json:
        err.print(json.dumps(asdict(summary)), highlight=False, soft_wrap=True)
    else:
        render.batch_summary(err, summary)


@app.command()
def info(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    verify: bool = typer.Option(False, "--verify", help="Also check every file's sha256."),
) -> None:
    """Show what a bundle holds: models, architectures, quantization, sizes, context."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.runtime.info import describe_bundle

    described = describe_bundle(Bundle.load(bundle, verify_checksums=verify))
    if as_json:
        print(json.dumps(described, ensure_ascii=False))
    else:
        render.bundle_info(out, described)


@app.command()
def plan(
    bundle: Path = BundleOpt,
    mem_budget: Optional[str] = typer.Option(
        None, "--mem-budget", help="Memory budget: 6GB, 6GiB, 512MiB or bytes "
        "(default: bundle.json memory.budget, else 80% of available memory)."),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    ctx: Optional[int] = typer.Option(None, "--ctx", min=16, help="Context length for every stage (default: the bundle's)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Plan memory (co-resident, swap, gpu-split or refuse) from the GGUF headers; loads no model."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.runtime.plan import format_plan, plan_bundle

    result = plan_bundle(Bundle.load(bundle), mem_budget=mem_budget, device=device, n_ctx=ctx)
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        for line in format_plan(result):
            out.print(line, markup=False, highlight=False)


@app.command()
def bench(
    bundle: Path = BundleOpt,
    against: Optional[Path] = typer.Option(None, "--against", help="A second bundle (e.g. the ONNX export of the same models), benched side by side in the same run."),
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="Picture to bench with (default: the sample picture)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of pictures, rotated across trials."),
    trials: int = typer.Option(5, "--trials", min=1, help="Timed trials after the warm-up."),
    warmup: int = typer.Option(1, "--warmup", min=0, help="Untimed warm-up trials."),
    extract_tokens: int = typer.Option(128, "--extract-tokens", min=1, help="Tokens the extraction generates (EOS ignored)."),
    think_tokens: int = typer.Option(256, "--think-tokens", min=0, help="Think budget (instruct reasoners: tokens before the answer)."),
    answer_tokens: int = typer.Option(32, "--answer-tokens", min=1, help="Tokens after </think>."),
    direct_tokens: int = typer.Option(16, "--direct-tokens", min=1, help="Tokens of the direct VLM answer."),
    budgets: str = typer.Option("0,256,1024,4096", "--budgets", help="Think budgets of the latency curve ('none': no curve)."),
    curve_trials: int = typer.Option(3, "--curve-trials", min=1, help="Runs per budget of the curve."),
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
    from edge_et.cli.render.bench import bench_command, parse_budgets

    bench_command(bundle=bundle, against=against, image=image, images=images, out=out_file, plot=plot, as_json=as_json,
                  console=out, err=err, trials=trials, warmup=warmup, extract_tokens=extract_tokens,
                  think_tokens=think_tokens, answer_tokens=answer_tokens, direct_tokens=direct_tokens,
                  budgets=parse_budgets(budgets), curve_trials=curve_trials, n_threads=threads,
                  residency=residency, bare=bare, direct=direct, bandwidth_mib=bandwidth_mib, seed=seed)


@app.command()
def pull(
    name: Optional[str] = typer.Argument(None, help="Catalog name of the model (see --list)."),
    store: Path = typer.Option(Path("models/store"), "--store", help="Local model store; the model lands in STORE/NAME/."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Hub URL (default: $EDGE_ET_HUB_URL, $HF_ENDPOINT or https://huggingface.co)."),
    list_models: bool = typer.Option(False, "--list", help="Show the model catalog and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Download a recommended model into the local store: resumable, sha256-checked."""
    from edge_et.bundle import catalog
    from edge_et.bundle import pull as pulling

    if list_models:
        rows = catalog.list_command(store)
        if as_json:
            print(json.dumps(rows, ensure_ascii=False))
        else:
            catalog.render_list(out, rows)
        return
    if not name:
        raise InputError("name a model to pull (edge-et pull --list shows the catalog)")
    summary = pulling.pull_command(name, store, base_url, as_json)
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        pulling.render_summary(out, summary)


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except EdgeEtError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:
        # typer's (vendored click) usage errors: they know how to show themselves, exit code 2.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise

if __name__ == "__main__":
    main()
