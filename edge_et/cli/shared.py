"""What every command module shares: the two consoles and the --bundle option."""

from __future__ import annotations

import shlex
import sys

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)

BUNDLE_HELP = (
    "Bundle folder (holds bundle.json), or the NAME of a bundle in the bundles home "
    "($EDGE_ET_BUNDLES, default models/bundles; `edge-et list` shows them)."
)
BundleOpt = typer.Option(..., "--bundle", "-b", help=BUNDLE_HELP)


def resume_command() -> str:
    """This very command line with --resume: what the user runs to continue a stopped run."""
    args = sys.argv[1:]
    return shlex.join(["edge-et", *args, *([] if "--resume" in args else ["--resume"])])
