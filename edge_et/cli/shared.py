"""What every command module shares: the two consoles and the --bundle option."""

from __future__ import annotations

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)

BundleOpt = typer.Option(..., "--bundle", "-b", help="Bundle folder (holds bundle.json).")
