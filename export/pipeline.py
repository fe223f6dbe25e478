"""`edge-et export gguf`: HF checkpoints → quantized GGUFs → validated bundle.

Steps per stage: identify the architecture (config.json), prepare a fixed-up copy if the
converter needs one, convert the text model (directly to F16/Q8_0, or to F16 and then
quantize to a K-quant), write the mmproj (converter or the architecture's own writer),
check both against transformers in a subprocess, then write the bundle with `parity.json`.
Everything happens in a scratch folder beside the output; the bundle appears by rename.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge_et.core import atomic
from edge_et.errors import ExportError, InputError
from edge_et.formats.gguf import read_gguf_info
from export import archs
from export.archs.base import ArchSpec
from export.bundle import Stage, write_bundle
from export.checkpoint import check_checkpoint, check_folder
from export.gguf import files as gguf
from export.parity import gguf as parity

TEXT_QUANTS = ("F32", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M")
MMPROJ_QUANTS = ("F32", "F16", "Q8_0")
DIRECT_TYPES = {"F32": "f32", "F16": "f16", "Q8_0": "q8_0"}  # the converter writes these itself
PARITY_FILE = "parity.json"

# step name → callable(label) that reports progress; the CLI passes a rich-backed one.
StepReporter = Callable[[str], None]


@dataclass
class ExportedFile:
    """One file of the bundle, for the summary table."""

    role: str
    file: str
    quant: str
    size_bytes: int
    bits_per_weight: float


@dataclass
class ExportReport:
    """What `export_gguf` produced."""

    bundle: Path
    files: list[ExportedFile] = field(default_factory=list)
    parity: dict = field(default_factory=dict)
    validated: bool = False


def check_quant(quant: str, allowed: tuple[str, ...], flag: str, what: str = "") -> str:
    """`quant` as `allowed` spells it (q4_k_m -> Q4_K_M, FP16 -> fp16: either case is taken);
    InputError naming `flag` (and `what`: " for ONNX") and the choices when it is none of them."""
    by_case = {choice.lower(): choice for choice in allowed}
    if quant.lower() not in by_case:
        raise InputError(
            f"{flag} {quant!r} is not supported{what}; choose one of: {', '.join(allowed)}"
        )
    return by_case[quant.lower()]


def export_gguf(
    *,
    out: Path,
    perception: Path | None = None,
    reasoning: Path | None = None,
    quant: str = "Q4_K_M",
    mmproj_quant: str = "F16",
    validate: bool = True,
    name: str | None = None,
    force: bool = False,
    n_ctx: int | None = None,
    step: StepReporter = lambda label: None,
) -> ExportReport:
    """Export one or both checkpoints into a bundle at `out` and return what was written."""
    quant = check_quant(quant, TEXT_QUANTS, "--quant")
    mmproj_quant = check_quant(mmproj_quant, MMPROJ_QUANTS, "--mmproj-quant")
    if perception is None and reasoning is None:
        raise InputError("give --perception HF_DIR, --reasoning HF_DIR, or both")
    out = Path(out)
    check_output(out, force)
    specs = {
        role: arch_spec_for(path, role)
        for role, path in (("perception", perception), ("reasoning", reasoning))
        if path is not None
    }
    with atomic.partial_directory(out) as scratch:  # a killed export leaves no bundle at `out`
        report = _export_into(
            scratch,
            specs,
            {"perception": perception, "reasoning": reasoning},
            quant,
            mmproj_quant,
            validate,
            name or out.name,
            n_ctx,
            step,
        )
        atomic.publish_directory(scratch / "bundle", out)
    report.bundle = out
    return report


def check_output(out: Path, force: bool) -> None:
    """Refuse an --out that is a file, or a non-empty folder without `force`."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(f"--out {out} is not empty; pass --force to replace it")


def arch_spec_for(hf_dir: Path, role: str) -> ArchSpec:
    """The architecture of the checkpoint `hf_dir`, checked to fit `role`.

    Every file a converter reads is checked first, in-process and cheaply (export/checkpoint.py):
    a malformed checkpoint is one InputError line before any subprocess starts.
    """
    hf_dir = Path(hf_dir)
    check_folder(hf_dir, f"--{role}")
    spec = archs.for_checkpoint(hf_dir)  # an unsupported model_type is said before its fields
    check_checkpoint(hf_dir, f"--{role}")
    if role == "perception" and not spec.is_vlm:
        raise InputError(
            f"--perception {hf_dir} is a text-only {spec.name} model; "
            "the perception stage needs a vision-language model"
        )
    return spec


def _export_into(
    scratch: Path,
    specs: dict[str, ArchSpec],
    dirs: dict[str, Path | None],
    quant: str,
    mmproj_quant: str,
    validate: bool,
    name: str,
    n_ctx: int | None,
    step: StepReporter,
) -> ExportReport:
    bundle_dir = scratch / "bundle"
    bundle_dir.mkdir()
    report = ExportReport(bundle=bundle_dir)
    stages: dict[str, Stage] = {}
    for role, spec in specs.items():
        hf_dir = Path(dirs[role])
        source = spec.prepare(hf_dir, scratch / f"{role}-prepared") if spec.prepare else hf_dir
        text, f16 = _text_gguf(
            source, bundle_dir / f"{role}.{quant}.gguf", quant, spec, scratch, step, role
        )
        if validate and f16 is not None:
            # K-quant bounds are loose enough to hide a structural fault on a random model;
            # the F16 file it was quantized from is held to F16's tight bounds first.
            step(f"{role}: checking the F16 source of the {quant} file against transformers")
            report.parity[f"{role}_f16_source"] = _parity(hf_dir, f16, None, "F16", "F16")
        if f16 is not None:
            f16.unlink()
        mmproj = None
        if spec.is_vlm:
            step(f"{role}: writing the vision projector ({mmproj_quant})")
            mmproj = _mmproj(source, spec, bundle_dir / f"mmproj.{mmproj_quant}.gguf", mmproj_quant)
        if validate:
            step(f"{role}: checking against transformers (subprocess)")
            report.parity[role] = _parity(hf_dir, text, mmproj, quant, mmproj_quant)
        stages[role] = Stage(
            model=text,
            mmproj=mmproj,
            n_ctx=n_ctx or _default_ctx(text, role),
            thinking=is_thinking(hf_dir, spec) if role == "reasoning" else None,
            source=f"exported by edge-et from {hf_dir.resolve().name} ({spec.name}, {quant})",
        )
    step("writing bundle.json")
    write_bundle(
        bundle_dir,
        name=name,
        description=f"exported from Hugging Face checkpoints ({quant})",
        perception=stages.get("perception"),
        reasoning=stages.get("reasoning"),
    )
    if validate:
        atomic.write_text(bundle_dir / PARITY_FILE, json.dumps(report.parity, indent=2) + "\n")
        report.validated = True
    report.files = summarize(bundle_dir, stages)
    return report


def _text_gguf(
    source: Path,
    target: Path,
    quant: str,
    spec: ArchSpec,
    scratch: Path,
    step: StepReporter,
    role: str,
) -> tuple[Path, Path | None]:
    """The text GGUF at `quant`, and the F16 file it was quantized from (None if direct)."""
    if quant in DIRECT_TYPES:
        step(f"{role}: converting the {spec.name} text model to {quant}")
        converted = gguf.convert(
            source, target, outtype=DIRECT_TYPES[quant], pre_tokenizer=spec.pre_tokenizer
        )
        return converted, None
    step(f"{role}: converting the {spec.name} text model to F16")
    f16 = gguf.convert(
        source, scratch / f"{role}.F16.gguf", outtype="f16", pre_tokenizer=spec.pre_tokenizer
    )
    step(f"{role}: quantizing to {quant}")
    return gguf.quantize(f16, target, quant), f16


def _mmproj(source: Path, spec: ArchSpec, target: Path, mmproj_quant: str) -> Path:
    outtype = DIRECT_TYPES[mmproj_quant]
    if spec.write_mmproj is not None:
        return spec.write_mmproj(source, target, outtype)
    return gguf.convert(source, target, outtype=outtype, mmproj=True)


def _parity(hf_dir: Path, text: Path, mmproj: Path | None, quant: str, mmproj_quant: str) -> dict:
    report = parity.run_parity(
        hf_dir,
        text_gguf=text,
        mmproj_gguf=mmproj,
        quant=quant,
        mmproj_quant=mmproj_quant if mmproj else None,
    )
    ok, failure = parity.passes(report)
    if not ok:
        raise ExportError(
            f"validation failed for {hf_dir.name} ({quant}): {failure} "
            "(use --no-validate to keep such an export anyway)"
        )
    return report


def _default_ctx(text: Path, role: str) -> int:
    trained = read_gguf_info(text).context_length or 4096
    return min(trained, 4096 if role == "perception" else 8192)


def is_thinking(hf_dir: Path, spec: ArchSpec) -> bool:
    """A reasoning model thinks when its chat template knows `<think>` (Qwen3 hybrid, R1 ...)."""
    config = hf_dir / "tokenizer_config.json"
    template = ""
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template") or ""
    jinja = hf_dir / "chat_template.jinja"
    if jinja.is_file():
        template += jinja.read_text(encoding="utf-8")
    return "<think>" in template if template else spec.thinking


def summarize(bundle_dir: Path, stages: dict[str, Stage]) -> list[ExportedFile]:
    """Files, sizes and bits per weight of the written bundle (from the GGUF headers)."""
    rows = []
    for role, stage in stages.items():
        for path in (stage.model, stage.mmproj):
            if path is None:
                continue
            info = read_gguf_info(bundle_dir / Path(path).name)
            elements = sum(element_count(t.shape) for t in info.tensors)
            bpw = info.tensor_bytes * 8 / elements if elements else 0.0
            rows.append(
                ExportedFile(
                    role=role,
                    file=Path(path).name,
                    quant=info.file_type,
                    size_bytes=info.size_bytes,
                    bits_per_weight=round(bpw, 2),
                )
            )
    return rows


def element_count(shape: tuple[int, ...]) -> int:
    """How many elements a tensor of `shape` holds."""
    total = 1
    for dim in shape:
        total *= dim
    return total
