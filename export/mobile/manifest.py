"""The two manifests of a mobile package.

- `bundle.json`: an ordinary edge-et bundle whose graphs are the `.ort` files, so
  `edge-et run --bundle PACKAGE` runs the package exactly as it ships.
- `mobile.json` (MOBILE_FORMAT): what an app reads: files with sizes and sha256, per stage its
  graphs, tokenizer and config, the prompts and decoding of the pipeline (defaults with the
  source bundle's overrides applied, so the app needs nothing else), the execution providers
  to try in order, the ORT version and ops config, the usability checker's verdicts, parity and
  the peak RSS measured per stage here.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from edge_et.bundle.manifest import BUNDLE_FORMAT, MANIFEST, sha256_file
from edge_et.core.decoding import DEFAULTS, stage_decoding
from edge_et.core.prompts import PromptSet
from edge_et.formats.mobile import FORMAT_NAME, FORMAT_VERSION, MOBILE_MANIFEST

# 2: the stage settings and the pipeline's rules (contract.py)
MOBILE_FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
# What an app tries, in order; ONNX Runtime assigns each node to the first provider that
# takes it, and the CPU provider takes everything else.
PROVIDER_ORDER = {
    "ios": ["CoreMLExecutionProvider", "XnnpackExecutionProvider", "CPUExecutionProvider"],
    "android": ["XnnpackExecutionProvider", "CPUExecutionProvider"],
}
TARGETS = tuple(PROVIDER_ORDER)


def write_json(path: Path, data: dict) -> Path:
    """`data` as indented JSON, through a temporary file: a reader never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def write_bundle(
    folder: Path, *, name: str, description: str, source, entries: dict[str, dict]
) -> Path:
    """bundle.json for the package: `entries` per role (paths relative to `folder`), every file's
    sha256, the source bundle's prompts, decoding and memory settings carried over."""
    manifest = {"format": BUNDLE_FORMAT, "name": name, "description": description}
    for role, entry in entries.items():
        config = str(Path(entry["model"]).parent / "onnx_config.json")
        files = [entry["model"], config, *entry["extra_files"]] + (
            [entry["mmproj"]] if entry.get("mmproj") else []
        )
        manifest[role] = {**entry, "sha256": {f: sha256_file(folder / f) for f in files}}
    manifest.update(prompts=source.prompts, decoding=source.decoding, memory=source.memory)
    return write_json(folder / MANIFEST, manifest)


def pipeline_settings(source) -> dict:
    """The prompts and per-stage decoding the runtime would use for `source`, spelled out."""
    return {
        "prompts": asdict(PromptSet.from_overrides(source.prompts)),
        "decoding": {stage: asdict(stage_decoding(stage, source.decoding)) for stage in DEFAULTS},
    }


def file_rows(folder: Path) -> list[dict]:
    """Every file of the package except the manifests: path, bytes, sha256."""
    rows = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name not in (MOBILE_MANIFEST, MANIFEST):
            rows.append(
                {"file": name, "size_bytes": path.stat().st_size, "sha256": sha256_file(path)}
            )
    return rows


def _embedding_words(embedding: dict | None) -> str | None:
    if embedding is None:
        return None
    return "float" if embedding["bits"] is None else f"int{embedding['bits']}"


def write_mobile(
    folder: Path,
    *,
    name: str,
    target: str,
    quant: str,
    source,
    conversion: dict,
    stages: dict[str, dict],
    parity: dict,
    rss: dict,
    embedding: dict | None = None,
    entries: dict[str, dict] | None = None,
    web: dict | None = None,
) -> Path:
    """mobile.json (see the module docstring). `embedding`: what was done to the reasoner's token
    embedding (export/mobile/embedding.py), summed up as `reasoning_embedding`. `entries`: the
    bundle.json entries per role, for the stage settings an app reads (contract.py); `web`: what
    a web page needs (export mobile --web)."""
    from export.mobile.contract import pipeline_contract, stage_contract

    for role, entry in (entries or {}).items():
        stages[role].update(stage_contract(folder, role, entry))
    files = file_rows(folder)
    graphs = [row for row in files if row["file"].endswith(".ort")]
    data = {
        "format": MOBILE_FORMAT,
        "name": name,
        "target": target,
        "reasoning_quant": quant,
        "reasoning_embedding": _embedding_words(embedding),
        "execution_providers": PROVIDER_ORDER[target],
        "onnxruntime": conversion,
        "stages": stages,
        **pipeline_settings(source),
        "pipeline": pipeline_contract(),
        **({"web": web} if web else {}),
        "measured": {
            "peak_rss_bytes": rss,
            "parity": parity,
            "where": "measured by the export on this machine with onnxruntime's CPU "
            "provider, not on a phone",
        },
        "sizes": {
            "graphs_bytes": sum(r["size_bytes"] for r in graphs),
            "total_bytes": sum(r["size_bytes"] for r in files),
        },
        "files": files,
        "source_bundle": str(source.path),
    }
    return write_json(folder / MOBILE_MANIFEST, data)
