"""`edge-et pull --list`: the catalog as compact tables that fit 80 columns.

One table per kind of row (pairs first, when the catalog has any, then perception models, then
reasoning models), each with only what a choice needs: the name to type, the architecture, the
quantization, the download size and whether the store has it. Everything else (repo, packages,
files, full license text, description) is in `--json`.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

KIND_TITLES = {
    "perception": "perception models (the VLM that looks)",
    "reasoning": "reasoning models (the LLM that thinks)",
}


def size_text(size: int | None) -> str:
    """Bytes in one short unit ('98 MB', '1.1 GB'); '-' where unknown."""
    if not size:
        return "-"
    if size >= 10**9:
        return f"{size / 10**9:.1f} GB"
    return f"{size / 10**6:.0f} MB"


def short_license(text: str) -> str:
    """The license's name without the explanation after it ('Apache-2.0 (upstream ...)' -> 'Apache-2.0')."""
    head = text.split(" (")[0].split(":")[0].split(";")[0].strip()
    return head if len(head) <= 11 else head[:10] + "…"


def _table(title: str, columns: list[tuple[str, str]]) -> Table:
    """A borderless table; one space between columns keeps the widest catalog row under 80."""
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=None,
        header_style="bold underline",
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")
    return table


def render_models(console: Console, rows: list[dict]) -> None:
    """A table per kind: name, arch, quant, size, license, whether it is in the store."""
    for kind, title in KIND_TITLES.items():
        chosen = [row for row in rows if row["kind"] == kind]
        if not chosen:
            continue
        table = _table(
            title,
            [
                ("name", "left"),
                ("arch", "left"),
                ("quant", "left"),
                ("size", "right"),
                ("license", "left"),
                ("pulled", "left"),
            ],
        )
        for row in chosen:
            quant = row["quant"] + ("*" if row["quant"] != row["recommended_quant"] else "")
            table.add_row(
                row["name"],
                row["architecture"],
                quant,
                size_text(row.get("size")),
                short_license(row["license"]),
                "yes" if row["pulled"] else "",
            )
        console.print(table)
        console.print()


def render_pairs(console: Console, pairs: list[dict]) -> None:
    """Named pairs (a perception model with a reasoning model): name, the two models, and what a
    first `bundle create` downloads."""
    if not pairs:
        return
    table = _table(
        "pairs (edge-et bundle create NAME)",
        [("name", "left"), ("perception", "left"), ("reasoning", "left"), ("downloads", "left")],
    )
    for pair in pairs:
        table.add_row(
            pair["name"],
            pair.get("perception") or "-",
            pair.get("reasoning") or "-",
            pair.get("download") or "",
        )
    console.print(table)
    console.print()


def render_catalog(console: Console, rows: list[dict], pairs: list[dict] | None = None) -> None:
    """Everything `pull --list` shows, then how to read it."""
    render_pairs(console, pairs or [])
    render_models(console, rows)
    console.print(
        "edge-et pull NAME fetches one. quant*: not the recommended quant; size: the download "
        "('-': not in the catalog); --json: repos, files, full licenses.",
        highlight=False,
    )
