"""`edge-et profiles`: the device profiles that `plan` and `run --deadline` take by name."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from edge_et.cli.shared import out


def profiles(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """List the device profiles: app memory, bandwidth, cores, published speeds, sources."""
    from edge_et.memory.profiles import load_profiles

    table = load_profiles()
    if as_json:
        print(json.dumps({name: p.to_dict() for name, p in table.items()}, ensure_ascii=False))
        return
    view = Table(title="device profiles (figures from their sources; none measured by edge-et)")
    view.add_column("name", no_wrap=True)
    for column in ("device", "RAM", "app may use", "bandwidth", "cores", "published decode"):
        view.add_column(column)
    for name, p in table.items():
        published = ", ".join(
            f"{d.model} {d.tok_s:g} tok/s ({d.runtime})" for d in p.published_decode
        )
        view.add_row(
            name,
            p.description,
            f"{p.ram_bytes / 1e9:g} GB",
            f"{p.app_memory_bytes / 1e9:g} GB",
            f"{p.bandwidth_bytes_per_s / 1e9:g} GB/s",
            str(p.cores),
            published or "-",
        )
    out.print(view)
    out.print(
        "sources: `edge-et profiles --json`, or edge_et/memory/profiles.toml", highlight=False
    )


def _list_on_request(value: str | None) -> str | None:
    """`--device-profile list` lists the profiles and stops (before --bundle is asked for)."""
    if value == "list":
        profiles(as_json=False)
        raise typer.Exit()
    return value


ProfileOpt = typer.Option(
    None,
    "--device-profile",
    is_eager=True,
    callback=_list_on_request,
    help="Plan for that device instead of this one (its app memory is the budget); "
    "`--device-profile list` or `edge-et profiles` lists them.",
)


def profile_lines(name: str) -> list[str]:
    """What `plan --device-profile` adds under the plan: the profile and what it cannot know."""
    from edge_et.memory.profiles import get_profile

    p = get_profile(name)
    summary = (
        f"device profile: {name} ({p.description}): app memory {p.app_memory_bytes / 1e9:g} GB "
        f"of {p.ram_bytes / 1e9:g} GB, {p.bandwidth_bytes_per_s / 1e9:g} GB/s, {p.cores} cores"
    )
    return [
        summary,
        "note: the runtime baseline above is this machine's; an app's own process adds its own",
    ]
