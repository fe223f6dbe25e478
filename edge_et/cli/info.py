"""`edge-et info`: what a bundle holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edge_et.cli.render import result as render
from edge_et.cli.shared import BUNDLE_HELP, out
from edge_et.errors import InputError


def info(
    bundle: Path | None = typer.Argument(None, help=BUNDLE_HELP),
    bundle_option: Path | None = typer.Option(
        None, "--bundle", "-b", help="The same, as an option (like run and plan)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    verify: bool = typer.Option(False, "--verify", help="Also check every file's sha256."),
) -> None:
    """Show what a bundle holds: models, architectures, quantization, sizes, context."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.runtime.info import describe_bundle

    if (bundle is None) == (bundle_option is None):
        raise InputError(
            "name one bundle: edge-et info BUNDLE (a folder or a NAME), or --bundle BUNDLE"
        )
    described = describe_bundle(Bundle.load(bundle or bundle_option, verify_checksums=verify))
    if as_json:
        print(json.dumps(described, ensure_ascii=False))
    else:
        render.bundle_info(out, described)
