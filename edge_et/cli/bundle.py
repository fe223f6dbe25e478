"""`edge-et bundle create`, `edge-et list` and `edge-et rm`: thin commands over edge_et.bundle.

Hugging Face checkpoints are converted through the export toolchain, imported here only when a REF
needs it (as `edge-et export` does): the runtime never imports `export`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from edge_et.cli.shared import err, out

bundle_app = typer.Typer(
    no_args_is_help=True,
    help="Make bundles from catalog names, the store, GGUF files and checkpoints.",
)

StoreOpt = typer.Option(
    Path("models/store"), "--store", help="Local model store (what `edge-et pull` fills)."
)
HomeOpt = typer.Option(
    None, "--home", help="Bundles home (default: $EDGE_ET_BUNDLES, else models/bundles)."
)


CONVERSION_NEEDS = ("torch", "transformers", "safetensors")


class ExportConverter:
    """Checkpoint -> one-stage GGUF bundle through `export.pipeline.export_gguf`, parity-checked."""

    def __init__(self, step):
        self.step = step

    def check(self) -> None:
        """MissingExtra, one line, before anything is downloaded: the toolchain and what converting
        and the parity check import later (found, not imported: torch alone takes seconds)."""
        import importlib.util

        from edge_et.cli.export import toolchain
        from edge_et.errors import MissingExtra

        toolchain("pipeline")
        for module in CONVERSION_NEEDS:
            try:
                found = importlib.util.find_spec(module) is not None
            except ImportError:
                found = False
            if not found:
                raise MissingExtra(
                    f"converting a Hugging Face checkpoint needs '{module}': "
                    "pip install 'edge-et[export]'",
                    extra="export",
                )

    def __call__(self, checkpoint: Path, role: str, quant: str, out_dir: Path) -> None:
        from edge_et.cli.export import toolchain

        toolchain("pipeline").export_gguf(
            out=out_dir,
            quant=quant,
            validate=True,
            name=out_dir.name,
            force=True,
            step=lambda label: label and self.step(label),
            **{role: checkpoint},
        )


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


@bundle_app.command("create")
def create(
    name: str = typer.Argument(
        ..., help="Bundle name (a catalog pair's name builds that pair; see edge-et pull --list)."
    ),
    perception: str | None = typer.Option(
        None,
        "--perception",
        "-p",
        help="REF: catalog name, store folder, GGUF file, HF checkpoint folder, or BUNDLE:perception.",
    ),
    reasoning: str | None = typer.Option(
        None,
        "--reasoning",
        "-r",
        help="REF: catalog name, store folder, GGUF file, HF checkpoint folder, or BUNDLE:reasoning.",
    ),
    mmproj: Path | None = typer.Option(
        None, "--mmproj", help="The vision projector GGUF of a --perception GGUF file."
    ),
    quant: str | None = typer.Option(
        None,
        "--quant",
        help="Quantization of converted checkpoints (default: the catalog's recommended).",
    ),
    store: Path = StoreOpt,
    home: Path | None = HomeOpt,
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        help="Hub URL (default: $EDGE_ET_HUB_URL, $HF_ENDPOINT or https://huggingface.co).",
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace a folder of that name not made by bundle create."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (no progress)."),
) -> None:
    """Make a bundle: pull, convert and link what the REFs name, then show the memory plan."""
    from edge_et.bundle.compose import create_bundle
    from edge_et.bundle.manifest import Bundle
    from edge_et.runtime.plan import format_plan, plan_bundle

    def step(label: str) -> None:
        if not as_json:
            err.print(f"[dim]·[/] {escape(label)}", highlight=False)

    report = create_bundle(
        name,
        perception=perception,
        reasoning=reasoning,
        mmproj=mmproj,
        home=home,
        store=store,
        base_url=base_url,
        progress=not as_json,
        convert=ExportConverter(step),
        quant=quant,
        force=force,
        step=step,
    )
    plan = plan_bundle(Bundle.load(report.path))
    if as_json:
        print(json.dumps({**report.to_dict(), "plan": plan.to_dict()}, ensure_ascii=False))
        return
    for s in report.stages:
        did = "downloaded" if s.downloaded else "converted" if s.converted else "no download"
        files = s.model + (f" + {s.mmproj}" if s.mmproj else "")
        think = "" if s.thinking is None else f", thinking {'on' if s.thinking else 'off'}"
        out.print(
            f"{s.role}: {escape(s.ref)} ({s.kind}; {did})\n  {escape(files)}\n  {s.arch}, {s.quant}, "
            f"n_ctx {s.n_ctx}{think}, {_size(s.bytes)}",
            highlight=False,
        )
    state = "already up to date" if report.unchanged else "written"
    out.print(
        f"[bold green]{escape(report.name)}[/] {state}: {escape(str(report.path))}", highlight=False
    )
    out.print("memory plan for this machine (edge-et plan):", highlight=False)
    for line in format_plan(plan):
        out.print(line, markup=False, highlight=False)
    if plan.decision != "refuse":
        out.print(
            f'next: edge-et run --bundle {escape(report.name)} --image PICTURE --question "..."',
            highlight=False,
        )


def list_local(
    store: Path = StoreOpt,
    home: Path | None = HomeOpt,
    mem_budget: str | None = typer.Option(
        None, "--mem-budget", help="Plan against this budget (default: 80% of available memory)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show the local bundles and store models: size on disk, quantization, whether the plan fits."""
    from edge_et.runtime.inventory import inventory

    found = inventory(home=home, store=store, mem_budget=mem_budget)
    if as_json:
        print(json.dumps(found, ensure_ascii=False))
        return
    _render_inventory(found)


def _render_inventory(found: dict) -> None:
    from rich.table import Table

    table = Table(title=f"bundles in {escape(found['home'])}", title_justify="left")
    for column in ("name", "size", "quant", "fits"):
        table.add_column(column, overflow="fold", justify="right" if column == "size" else "left")
    for b in found["bundles"]:
        fits = f"yes ({b['plan']})" if b["fits"] else ("no" if b["plan"] else "broken")
        table.add_row(escape(b["name"]), _size(b["size_bytes"]), b["quant"] or "-", fits)
    out.print(
        table
        if found["bundles"]
        else f"no bundles in {escape(found['home'])} (edge-et bundle create NAME makes one)",
        highlight=False,
    )
    table = Table(title=f"models in {escape(found['store'])}", title_justify="left")
    for column in ("name", "size", "quant", "used by"):
        table.add_column(column, overflow="fold", justify="right" if column == "size" else "left")
    for m in found["models"]:
        table.add_row(
            escape(m["name"]), _size(m["size_bytes"]), m["quant"], ", ".join(m["used_by"]) or "-"
        )
    out.print(
        table if found["models"] else f"no models in {escape(found['store'])}", highlight=False
    )
    for b in found["bundles"]:
        if b["problem"]:
            err.print(f"{escape(b['name'])}: {escape(b['problem'])}", highlight=False)


def rm(
    name: str = typer.Argument(
        ..., help="A bundle of the bundles home, or a store model no bundle uses."
    ),
    store: Path = StoreOpt,
    home: Path | None = HomeOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Remove a bundle, or a store model that no bundle uses."""
    from edge_et.bundle.inventory import remove

    done = remove(name, home=home, store=store)
    if as_json:
        print(json.dumps(done))
    else:
        out.print(
            f"removed {done['removed']} {escape(name)} ({escape(done['path'])}, {_size(done['bytes'])})",
            highlight=False,
        )
