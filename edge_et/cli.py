"""The `edge-et` command line: each command parses its options and calls one library function."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from edge_et import render
from edge_et.cli_export import export_app
from edge_et.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Extract+Think on your device: a VLM extracts, an LLM thinks.")
out = Console()
err = Console(stderr=True)
app.add_typer(export_app, name="export")

BundleOpt = typer.Option(..., "--bundle", "-b", help="Bundle folder (holds bundle.json).")


@app.command()
def run(
    bundle: Path = BundleOpt,
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="Image file."),
    question: str = typer.Option(..., "--question", "-q", help="The question (options A-D may follow on new lines)."),
    mode: str = typer.Option("extract-think", help="extract-think | caption-think | direct | extract"),
    hint: Optional[str] = typer.Option(None, help="Extraction hint phrase; 'auto' asks the reasoning model; default: derived from the question."),
    think_budget: Optional[int] = typer.Option(None, min=0, help="Thinking tokens before </think> is forced (thinking models)."),
    answer_budget: Optional[int] = typer.Option(None, min=1, help="Tokens allowed after </think>."),
    max_tokens: Optional[int] = typer.Option(None, min=1, help="Token limit of a non-thinking reasoner."),
    temperature: Optional[float] = typer.Option(None, min=0.0, help="Reasoning temperature (0 = greedy)."),
    seed: Optional[int] = typer.Option(None, help="Seed for sampling; the same seed repeats a run."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads (default: all cores)."),
    stream: bool = typer.Option(False, "--stream", help="Print reasoning tokens as they are generated."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    verify: bool = typer.Option(False, "--verify", help="Check model sha256 before loading."),
) -> None:
    """Answer a question about an image."""
    from edge_et.bundle import Bundle
    from edge_et.pipeline import Pipeline, RunOptions, check_mode

    check_mode(mode)
    loaded = Bundle.load(bundle, verify_checksums=verify)
    sink = Console(stderr=as_json)
    on_text = (lambda text: sink.print(text, end="", markup=False, highlight=False)) if stream else None
    options = RunOptions(mode=mode, hint=hint, seed=seed, think_budget=think_budget,
                         answer_budget=answer_budget, max_tokens=max_tokens,
                         temperature=temperature, on_reasoning_text=on_text)
    if not as_json:
        render.random_weight_warnings(err, loaded)
    with Pipeline(loaded, n_threads=threads) as pipeline:
        if stream and not as_json:
            sink.rule("reasoning (streamed)")
        result = pipeline.run(image, question, options)
    if stream:
        sink.print()
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        render.result(out, result, streamed=stream)


@app.command()
def info(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    verify: bool = typer.Option(False, "--verify", help="Also check every file's sha256."),
) -> None:
    """Show what a bundle holds: models, architectures, quantization, sizes, context."""
    from edge_et.bundle import Bundle
    from edge_et.info import describe_bundle

    described = describe_bundle(Bundle.load(bundle, verify_checksums=verify))
    if as_json:
        print(json.dumps(described, ensure_ascii=False))
    else:
        render.bundle_info(out, described)


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except UserError as exc:
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
