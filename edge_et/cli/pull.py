"""`edge-et pull`: download a catalog model into the local store."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from edge_et.cli.shared import out
from edge_et.errors import InputError


def pull(
    name: str | None = typer.Argument(None, help="Catalog name of the model (see --list)."),
    store: Path = typer.Option(
        Path("models/store"), "--store", help="Local model store; the model lands in STORE/NAME/."
    ),
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        help="Hub URL (default: $EDGE_ET_HUB_URL, $HF_ENDPOINT or https://huggingface.co).",
    ),
    list_models: bool = typer.Option(False, "--list", help="Show the model catalog and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Download a recommended model into the local store: resumable, sha256-checked."""
    from edge_et.bundle import catalog
    from edge_et.bundle import pull as pulling

    if list_models:
        from edge_et.bundle.pairs import list_pairs

        rows, pairs = catalog.list_command(store), list_pairs(store)
        if as_json:  # pairs are rows too, with kind "pair"
            print(json.dumps(rows + pairs, ensure_ascii=False))
        else:
            from edge_et.cli.render.catalog import render_catalog

            render_catalog(out, rows, pairs=pairs)
        return
    if not name:
        raise InputError("name a model to pull (edge-et pull --list shows the catalog)")
    summary = pulling.pull_command(name, store, base_url, as_json)
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        _render_summary(summary)


def _render_summary(summary: dict) -> None:
    """One line per file, then where the model lies."""
    for f in summary["files"]:
        action = (
            "downloaded"
            if f["downloaded"]
            else f"linked from the Hugging Face cache ({f['linked']})"
            if f.get("linked")
            else "already present"
        )
        check = {"none": "no digest to check yet; recorded"}.get(
            f["verified_by"], f"sha256 ok ({f['verified_by']})"
        )
        out.print(f"{escape(f['path'])}: {action}, {f['size']:,} bytes, {check}")
    out.print(f"[bold green]{escape(summary['name'])}[/] is in {escape(summary['path'])}")
