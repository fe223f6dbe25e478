"""`edge-et export onnx`: HF checkpoints → ONNX graphs (fp32/fp16/int8) → validated bundle.

Per stage, in its own folder of the bundle (`perception/`, `reasoning/`):
- reasoning: `decoder.onnx` by optimum-onnx (text-generation-with-past);
- perception: the VLM's language model as a causal LM, exported the same way, then grafted to
  take `inputs_embeds` (`decoder.onnx`) with the lookup split off (`embed.onnx`), and the
  vision tower + projector by torch.onnx (`vision.onnx`, export/onnx/vision.py);
- the precision step (fp16 conversion or int8 dynamic quantization) on every graph;
- `tokenizer.json` and `onnx_config.json` (export/onnx/stage.py).
Then every stage is checked against transformers in a subprocess (export/parity/onnx.py) and
`bundle.json` + `parity.json` are written. Work happens in a scratch folder beside the output;
the bundle appears by rename, as with `export gguf`.
"""

from __future__ import annotations

import json
import shutil
from importlib import import_module
from pathlib import Path

from edge_et.bundle.manifest import BUNDLE_FORMAT, MANIFEST, sha256_file
from edge_et.core import atomic
from edge_et.errors import ExportError, InputError, MissingExtra
from edge_et.formats.onnx_stage import STAGE_CONFIG
from export.archs.base import ArchSpec
from export.onnx import stage as onnx_stage
from export.onnx import text as onnx_text
from export.onnx import vision as onnx_vision
from export.onnx.idefics3 import check_layout
from export.parity import onnx as onnx_parity
from export.pipeline import (
    PARITY_FILE,
    ExportedFile,
    ExportReport,
    StepReporter,
    arch_spec_for,
    check_output,
    element_count,
    is_thinking,
)
from export.pipeline import (
    check_quant as check_choice,
)

QUANTS = onnx_text.QUANTS
# model_type → module whose export_decoder(hf_dir, decoder, embed) traces the language model
# itself, where optimum-onnx has no export for it.
OWN_DECODERS = {
    "qwen2_vl": "export.onnx.qwen2vl_decoder",
    "qwen2_5_vl": "export.onnx.qwen2vl_decoder",
}
DEFAULT_CTX = {"perception": 4096, "reasoning": 8192}


def _require_toolchain() -> None:
    """One line naming the missing package (the `export` extra carries all of them)."""
    from importlib.util import find_spec

    for module, dist in (
        ("optimum.exporters.onnx", "optimum-onnx"),
        ("onnx", "onnx"),
        ("onnxruntime", "onnxruntime"),
    ):
        try:
            found = find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise MissingExtra(
                f"the ONNX export needs '{dist}': pip install 'edge-et[export]'", extra="export"
            )


def check_quant(quant: str) -> str:
    """`quant` as an ONNX precision (fp32 | fp16 | int8, either case); InputError otherwise."""
    return check_choice(quant, QUANTS, "--quant", " for ONNX")


def export_onnx(
    *,
    out: Path,
    perception: Path | None = None,
    reasoning: Path | None = None,
    quant: str = "int8",
    validate: bool = True,
    name: str | None = None,
    force: bool = False,
    n_ctx: int | None = None,
    image_layout: str | None = None,
    perception_quant: str | None = None,
    step: StepReporter = lambda label: None,
) -> ExportReport:
    """Export one or both checkpoints into an ONNX bundle at `out`; returns what was written.

    `image_layout` ("hf" or "mtmd", Idefics3/SmolVLM only; edge_et/formats/idefics3.py):
    how images are tiled and tokenized; unset, the checkpoint's default. `perception_quant`:
    the perception stage's precision when it differs from `quant` (a small VLM kept at fp32
    beside an int8 reasoner)."""
    quant = check_quant(quant)
    quants = {"reasoning": quant, "perception": check_quant(perception_quant or quant)}
    _require_toolchain()
    if perception is None and reasoning is None:
        raise InputError("give --perception HF_DIR, --reasoning HF_DIR, or both")
    dirs = {
        role: Path(p)
        for role, p in (("perception", perception), ("reasoning", reasoning))
        if p is not None
    }
    specs = {
        role: arch_spec_for(path, role) for role, path in dirs.items()
    }  # checks the files first
    if image_layout is not None:
        if perception is None:
            raise InputError("--image-layout applies to a --perception checkpoint")
        onnx_vision.check_options(Path(perception), layout=check_layout(image_layout))
    out = Path(out)
    check_output(out, force)
    with atomic.partial_directory(out) as scratch:  # a killed export leaves no bundle at `out`
        bundle_dir = scratch / "bundle"
        bundle_dir.mkdir()
        report = ExportReport(bundle=bundle_dir)
        entries = {}
        for role, spec in specs.items():
            entries[role] = _exported(
                dirs[role],
                spec,
                role,
                bundle_dir / role,
                quants[role],
                scratch / role,
                step,
                image_layout=image_layout,
            )
            entries[role]["n_ctx"] = n_ctx or DEFAULT_CTX[role]
            if validate:
                step(f"{role}: checking against transformers (subprocess)")
                report.parity[role] = _parity(dirs[role], bundle_dir / role, quants[role])
        used = {quants[role] for role in entries}
        step("writing bundle.json")
        write_manifest(bundle_dir, name or out.name, "/".join(sorted(used)), entries)
        if validate:
            atomic.write_text(bundle_dir / PARITY_FILE, json.dumps(report.parity, indent=2) + "\n")
            report.validated = True
        report.files = summarize(bundle_dir, entries, quants)
        atomic.publish_directory(bundle_dir, out)
    report.bundle = out
    return report


# What transformers, optimum and torch.onnx raise for a checkpoint they cannot load or trace (a
# config.json that disagrees with the weights' shapes, a tensor missing): the input's fault, said
# in one line. export_stage's own checks raise EdgeEtError kinds and pass through untouched.
_TOOLCHAIN_FAILURES = (RuntimeError, ValueError, KeyError, TypeError, IndexError, OSError)


def _exported(hf_dir: Path, spec: ArchSpec, role: str, *args, **kwargs) -> dict:
    """`export_stage`, with the toolchain's failures on this checkpoint as one ExportError line."""
    try:
        return export_stage(hf_dir, spec, role, *args, **kwargs)
    except _TOOLCHAIN_FAILURES as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        raise ExportError(
            f"the ONNX export of --{role} {hf_dir.name} ({spec.name}) failed: "
            f"{type(exc).__name__}: {first[:300]}"
        ) from exc


def export_stage(
    hf_dir: Path,
    spec: ArchSpec,
    role: str,
    stage_dir: Path,
    quant: str,
    work: Path,
    step: StepReporter,
    *,
    image_layout: str | None = None,
) -> dict:
    """Write one stage folder; returns its manifest entry (paths relative to the bundle)."""
    stage_dir.mkdir(parents=True)
    work.mkdir(parents=True)
    template_source = spec.prepare(hf_dir, work / "prepared") if spec.prepare else hf_dir
    graphs: dict[str, Path] = {}
    vision = None
    if spec.is_vlm:
        _export_vlm_decoder(hf_dir, spec, role, work, step)
        graphs.update(decoder=work / "decoder.onnx", embed=work / "embed.onnx")
        step(f"{role}: exporting the vision tower and projector (torch.onnx)")
        vision = onnx_vision.export_vision(hf_dir, stage_dir, layout=image_layout)
        (stage_dir / vision["file"]).rename(work / "vision.onnx")
        graphs["vision"] = work / "vision.onnx"
    else:
        step(f"{role}: exporting the {spec.name} decoder (optimum-onnx)")
        graphs["decoder"] = onnx_text.export_decoder(hf_dir, work / "optimum")
    step(f"{role}: writing the graphs at {quant}")
    for key, path in graphs.items():
        graph = onnx_text.set_precision(path, stage_dir / f"{key}.onnx", quant)
        for written in onnx_text.data_files(graph):
            written.chmod(0o644)  # onnxruntime's quantizer writes its data file private
    shutil.copyfile(hf_dir / "tokenizer.json", stage_dir / "tokenizer.json")
    config = onnx_stage.stage_config(
        hf_dir,
        template_source,
        arch=spec.name,
        quant=quant,
        vision=vision,
        embed="embed.onnx" if spec.is_vlm else None,
    )
    onnx_stage.write_stage_config(stage_dir, config)
    return _entry(hf_dir, spec, role, stage_dir)


def _export_vlm_decoder(
    hf_dir: Path, spec: ArchSpec, role: str, work: Path, step: StepReporter
) -> None:
    """`decoder.onnx` (inputs_embeds in) and `embed.onnx` of a VLM's language model in `work`."""
    model_type = json.loads((hf_dir / "config.json").read_text()).get("model_type")
    if model_type in OWN_DECODERS:
        step(f"{role}: exporting the {spec.name} language model (torch.onnx, M-RoPE positions)")
        import_module(OWN_DECODERS[model_type]).export_decoder(
            hf_dir, work / "decoder.onnx", work / "embed.onnx"
        )
        return
    step(f"{role}: exporting the {spec.name} language model (optimum-onnx, inputs_embeds)")
    lm = onnx_text.language_model_checkpoint(hf_dir, work / "lm")
    raw = onnx_text.export_decoder(lm, work / "optimum")
    onnx_text.graft_inputs_embeds(raw, work / "decoder.onnx", work / "embed.onnx")


def _entry(hf_dir: Path, spec: ArchSpec, role: str, stage_dir: Path) -> dict:
    files = sorted(p.name for p in stage_dir.iterdir())
    main = {"model": "decoder.onnx", "mmproj": "vision.onnx" if spec.is_vlm else None}
    extra = [f for f in files if f not in main.values() and f != STAGE_CONFIG]
    entry = {
        "backend": "onnx",
        "model": f"{role}/decoder.onnx",
        "arch": spec.name,
        "extra_files": [f"{role}/{f}" for f in extra],
    }
    if spec.is_vlm:
        entry["mmproj"] = f"{role}/vision.onnx"
    else:
        entry["thinking"] = is_thinking(hf_dir, spec)
    entry["random_weights"] = _random(hf_dir)
    entry["source"] = f"exported by edge-et from {hf_dir.resolve().name} ({spec.name}, ONNX)"
    return entry


def _random(hf_dir: Path) -> bool:
    recipe = hf_dir / "tiny_recipe.json"
    return recipe.is_file() and bool(json.loads(recipe.read_text()).get("random_weights"))


def write_manifest(bundle_dir: Path, name: str, quant: str, entries: dict[str, dict]) -> Path:
    """bundle.json with every file's sha256, written last and atomically."""
    manifest = {
        "format": BUNDLE_FORMAT,
        "name": name,
        "description": f"ONNX bundle exported from Hugging Face checkpoints ({quant})",
    }
    for role, entry in entries.items():
        files = [entry["model"], f"{role}/{STAGE_CONFIG}", *entry["extra_files"]]
        files += [entry["mmproj"]] if entry.get("mmproj") else []
        manifest[role] = {**entry, "sha256": {f: sha256_file(bundle_dir / f) for f in files}}
    manifest.update(prompts={}, decoding={})
    path = bundle_dir / MANIFEST
    return atomic.write_text(path, json.dumps(manifest, indent=2) + "\n")


def _parity(hf_dir: Path, stage_dir: Path, quant: str) -> dict:
    report = onnx_parity.run_parity(hf_dir, stage_dir, quant=quant)
    ok, failure = onnx_parity.passes(report)
    if not ok:
        raise ExportError(
            f"validation failed for {hf_dir.name} ({quant}): {failure} "
            "(use --no-validate to keep such an export anyway)"
        )
    return report


def summarize(
    bundle_dir: Path, entries: dict[str, dict], quants: dict[str, str]
) -> list[ExportedFile]:
    """Every graph of the bundle with its size and bits per stored weight element."""
    import onnx

    rows = []
    for role, entry in entries.items():
        for rel in [entry["model"], entry.get("mmproj"), *entry["extra_files"]]:
            if not rel or not rel.endswith(".onnx"):
                continue
            path = bundle_dir / rel
            model = onnx.load(str(path), load_external_data=False)
            elements = sum(element_count(tuple(t.dims)) for t in model.graph.initializer)
            size = onnx_text.total_bytes(path)
            bits = round(size * 8 / elements, 2) if elements else 0.0
            rows.append(
                ExportedFile(
                    role=role, file=rel, quant=quants[role], size_bytes=size, bits_per_weight=bits
                )
            )
    return rows
