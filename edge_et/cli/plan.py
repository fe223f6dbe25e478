"""`edge-et plan`: will the bundle fit? From the file headers; loads no model."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edge_et.cli.profiles import ProfileOpt, profile_lines
from edge_et.cli.shared import BundleOpt, out
from edge_et.core.devices import DEVICE_HELP


def plan(
    bundle: Path = BundleOpt,
    mem_budget: str | None = typer.Option(
        None,
        "--mem-budget",
        help="Memory budget: 6GB, 6GiB, 512MiB or bytes "
        "(default: bundle.json memory.budget, else 80% of available memory).",
    ),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    ctx: int | None = typer.Option(
        None, "--ctx", min=16, help="Context length for every stage (default: the bundle's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    device_profile: str | None = ProfileOpt,
) -> None:
    """Plan memory (co-resident, swap, gpu-split or refuse) from the GGUF headers; loads no model."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.runtime.plan import format_plan, plan_bundle

    result = plan_bundle(
        Bundle.load(bundle),
        mem_budget=mem_budget,
        device=device,
        n_ctx=ctx,
        device_profile=device_profile,
    )
    if as_json:
        data = result.to_dict()
        if device_profile:
            data["device_profile"] = device_profile
        print(json.dumps(data, ensure_ascii=False))
    else:
        lines = format_plan(result) + (profile_lines(device_profile) if device_profile else [])
        for line in lines:
            out.print(line, markup=False, highlight=False)
