"""`edge-et info`: what a bundle holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edge_et.cli.render import result as render
from edge_et.cli.shared import out


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
