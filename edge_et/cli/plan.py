"""`edge-et plan`: will the bundle fit? From the file headers; loads no model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edge_et.cli.shared import BundleOpt, out
from edge_et.core.devices import DEVICE_HELP


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
