"""`edge-et chat`: a conversation in the terminal, about one picture or none.

The models load once; each line read is a turn (runtime/chat.py's `Conversation`), so a
follow-up costs its own extraction and reasoning, never a reload or a second image encode.
`/image PATH` switches the picture, `/reset` forgets the conversation, `/quit` or end of input
ends it. With `--json` every turn is one JSON line (the `Result`), for scripts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from edge_et.cli.shared import BundleOpt, err, out
from edge_et.core.devices import DEVICE_HELP
from edge_et.errors import InputError

HELP_LINE = "a question per line; /image PATH switches the picture, /reset forgets, /quit ends"


def chat(
    bundle: Path = BundleOpt,
    image: Path | None = typer.Option(
        None,
        "--image",
        "-i",
        help="The picture the conversation is about (none: text only until /image).",
    ),
    system: str | None = typer.Option(
        None, "--system", help="System text for the reasoning model."
    ),
    mode: str = typer.Option(
        "extract-think", help="extract-think | caption-think (turns about a picture)."
    ),
    hint: str | None = typer.Option(
        None, help="Extraction hint for every turn; default: from each question."
    ),
    think_budget: int | None = typer.Option(
        None, min=0, help="Thinking tokens before </think> is forced."
    ),
    answer_budget: int | None = typer.Option(
        None, min=1, help="Tokens after </think> (or the answer cue)."
    ),
    max_tokens: int | None = typer.Option(
        None, min=1, help="Token limit of a non-thinking reasoner."
    ),
    temperature: float | None = typer.Option(
        None, min=0.0, help="Reasoning temperature (0 = greedy)."
    ),
    seed: int | None = typer.Option(None, help="Seed of the first turn (each turn uses the next)."),
    image_detail: str = typer.Option(
        "auto", "--image-detail", help="low (one cheap look) | high | auto."
    ),
    json_schema: Path | None = typer.Option(
        None, "--json-schema", help="Every answer is JSON under this schema (a file)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON line (the Result) per turn."),
    mem_budget: str | None = typer.Option(
        None, "--mem-budget", help="Memory budget (6GB, 512MiB)."
    ),
    residency: str = typer.Option("auto", help="auto | co-resident | swap."),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    threads: int | None = typer.Option(None, min=1, help="CPU threads (default: all cores)."),
) -> None:
    """Talk about a picture: follow-up questions without reloading anything."""
    from edge_et.core.images import load_image
    from edge_et.errors import EdgeEtError
    from edge_et.runtime.api import open_bundle, open_pipeline
    from edge_et.runtime.chat import Conversation
    from edge_et.runtime.constraints import schema_file_constraint
    from edge_et.runtime.options import RunOptions

    if mode not in ("extract-think", "caption-think"):
        raise InputError(f"chat --mode is extract-think or caption-think, not {mode!r}")
    loaded = open_bundle(bundle, modes=[mode])
    picture = load_image(image) if image is not None else None
    options = RunOptions(
        mode=mode,
        hint=hint,
        seed=seed,
        think_budget=think_budget,
        answer_budget=answer_budget,
        max_tokens=max_tokens,
        temperature=temperature,
        image_detail=image_detail,
        constraint=schema_file_constraint(json_schema),
    )
    with open_pipeline(
        loaded, mem_budget=mem_budget, device=device, residency=residency, threads=threads
    ) as pipeline:
        pipeline.check_options(options)  # an unusable schema or detail: one line, nothing loaded
        talk = Conversation(pipeline, picture, system=system, options=options)
        thinking = bool(loaded.reasoning and loaded.reasoning.thinking)
        if not as_json:
            err.print(HELP_LINE, highlight=False, markup=False)
        turn = 0
        for line in _lines(interactive=sys.stdin.isatty() and not as_json):
            if line in ("/quit", "/exit"):
                break
            if line == "/reset":
                talk = Conversation(pipeline, talk.image, system=system, options=options)
                continue
            try:
                if line.startswith("/image "):
                    talk = Conversation(
                        pipeline, load_image(line[7:].strip()), system=system, options=options
                    )
                    continue
                values = {"seed": seed + turn} if seed is not None else {}
                result = talk.ask(line, **values)
            except EdgeEtError as error:  # a bad turn ends that turn, not the conversation
                err.print(f"error: {error}", highlight=False, markup=False, soft_wrap=True)
                continue
            turn += 1
            _show(result, thinking, as_json)


def _lines(*, interactive: bool) -> Iterator[str]:
    while True:
        if interactive:
            err.print("> ", end="", highlight=False, markup=False)
        line = sys.stdin.readline()
        if not line:
            return
        if line.strip():
            yield line.strip()


def _show(result, thinking: bool, as_json: bool) -> None:
    from edge_et.runtime.chat import reply_text, thought_text

    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
        return
    thought = thought_text(result, thinking)
    if thought:
        out.print(f"[dim]{thought}[/dim]", highlight=False, soft_wrap=True)
    if result.conversation and result.conversation.get("dropped"):
        err.print(
            f"({result.conversation['dropped']} oldest turn(s) left out to fit the context)",
            highlight=False,
            markup=False,
        )
    out.print(reply_text(result, thinking), highlight=False, markup=False, soft_wrap=True)
