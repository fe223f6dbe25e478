"""`edge-et export mobile`: an ONNX or GGUF bundle → a package an app embeds (ORT format, int4, fixed shapes)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edge_et.cli.export import err, export_app, out, step_printer, toolchain


@export_app.command("mobile")
def export_mobile(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Package folder to write."),
    bundle: Path | None = typer.Option(
        None,
        "--bundle",
        "-b",
        help="An ONNX bundle (edge-et export onnx; fp32 or fp16 for an int4 reasoner), or a GGUF bundle such as the demo's (models/bundles/default): its micro perception is rebuilt from the GGUFs, its reasoner dequantized to float32, then both exported to ONNX first. Other GGUF perception models are not supported.",
    ),
    perception: Path | None = typer.Option(
        None, help="HF checkpoint of the perception VLM (exported to ONNX first)."
    ),
    reasoning: Path | None = typer.Option(
        None, help="HF checkpoint of the reasoning LLM (exported to ONNX first)."
    ),
    target: str = typer.Option(
        "android",
        help="android (XNNPACK → CPU) | ios (CoreML → XNNPACK → CPU): the provider order in mobile.json.",
    ),
    quant: str = typer.Option(
        "int4", help="The reasoner's weights: int4 | int8 (MatMulNBits, blocks of 32)."
    ),
    embedding: str = typer.Option(
        "int8",
        help="The reasoner's token embedding: int8 | int4 (GatherBlockQuantized; a tied output matrix shares its weight at these bits) | float (as before: larger).",
    ),
    name: str | None = typer.Option(None, help="Package name (default: the folder name)."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    web: bool = typer.Option(
        False,
        "--web",
        help="For a web page (ONNX Runtime Web, web/): the reasoner computes in fp32 as WebAssembly does, and mobile.json gains its 'web' section (threads, the 4 GiB WebAssembly memory).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print mobile.json."),
) -> None:
    """Write a mobile package: .ort graphs, ops config, mobile.json (providers, sizes, RSS, parity)."""
    mobile = toolchain("mobile.package")
    with step_printer(not as_json) as step:
        data = mobile.export_mobile(
            out=out_dir,
            bundle=bundle,
            perception=perception,
            reasoning=reasoning,
            target=target,
            quant=quant,
            embedding=embedding,
            name=name,
            force=force,
            web=web,
            step=step,
        )
    failing = [role for role, v in data["measured"]["parity"].items() if not v["passes"]]
    if failing:  # written anyway: its numbers are the point of measuring it
        err.print(
            f"warning: the {' and '.join(failing)} stage of the package is outside its parity "
            "bounds (mobile.json measured.parity, parity.json); try --quant int8",
            markup=False,
            highlight=False,
        )
    if as_json:
        print(json.dumps(data, ensure_ascii=False))
        return
    for line in summary_lines(data, out_dir):
        out.print(line, markup=False, highlight=False)


def summary_lines(data: dict, folder: Path) -> list[str]:
    """What was written, how large, how close to the source, how much memory per stage."""
    head = (
        f"mobile package '{data['name']}' in {folder} (target {data['target']}, reasoner "
        f"{data['reasoning_quant']}, token embedding {data['reasoning_embedding']}; providers {' → '.join(data['execution_providers'])})"
    )
    sizes = (
        f"graphs {data['sizes']['graphs_bytes'] / 2**20:.1f} MiB, all files "
        f"{data['sizes']['total_bytes'] / 2**20:.1f} MiB; needs "
        f"{data['onnxruntime']['needs']}; ops config {data['onnxruntime']['ops_config']}"
    )
    lines = [head, sizes]
    if data.get("web"):
        web = data["web"]
        lines.append(
            f"web: {web['runtime']}; MatMulNBits at accuracy level {web['matmul_accuracy_level']} "
            f"(fp32, as WebAssembly computes); graphs {sum(web['graph_bytes'].values()) / 2**20:.0f} MiB "
            f"of one {web['wasm_memory_limit_bytes'] / 2**30:.0f} GiB WebAssembly heap (web/, docs/mobile.md)"
        )
    for role, verdict in data["measured"]["parity"].items():
        rss = data["measured"]["peak_rss_bytes"][role]["peak_rss_bytes"] / 2**20
        state = "passes" if verdict["passes"] else "FAILS: " + "; ".join(verdict["failures"])
        lines.append(
            f"{role}: parity {state} (bounds {verdict['bounds']}, rms ratio "
            f"{verdict['rel_rms']:.3g}, argmax {verdict['argmax_agreement']:.1%}); "
            f"peak RSS {rss:.0f} MiB"
        )
    return lines
