"""The published micro perception model as a float transformers checkpoint, rebuilt from its GGUFs.

Only the F16 GGUF, its mmproj, the tokenizer and the training summary are committed
(models/micro/<form>/, export.micro.release); the float checkpoint they were exported from is
not. The ONNX and mobile exports need one, so it is rebuilt:

1. the HF skeleton from the micro recipe (`micro_blueprint` with the summary's config overrides
   and the tokenizer beside the GGUFs);
2. its weights read back from the GGUFs through the converter run backwards (export.gguf.unconvert:
   the name map and the Q/K permutation learnt from the converter itself). F16 -> float32 is exact;
3. proof: the rebuilt checkpoint goes through the project's own GGUF export again (with its
   transformers-vs-llama.cpp parity check) and every tensor of the result must be bit-identical
   to the committed files' (`roundtrip.json` records it).

Cached under `<cache>/micro-hf/<key>/`, the key being the GGUFs' sha256 plus the source of the
modules that rebuild (so that a change to them is proven again before it is used) and the
library versions: about a minute once, then instant.

    python -m export.micro.from_gguf [models/micro/extract]   # prints the checkpoint's folder
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from edge_et.core.atomic import atomic_directory
from edge_et.core.cache import cache_root
from edge_et.errors import ExportError, InputError
from edge_et.formats.gguf import read_gguf_info
from export.micro.release import PUBLISHED, SUMMARY, TOKENIZER_FILES
from export.micro.train import RECIPE_FILE, SUMMARY_ONLY

TEXT, MMPROJ = PUBLISHED[0], PUBLISHED[1]
ROUNDTRIP = "roundtrip.json"


def is_micro_folder(folder: Path) -> bool:
    """Does `folder` hold a published micro model (GGUFs, tokenizer and training summary)?"""
    folder = Path(folder)
    return all((folder / name).is_file() for name in (TEXT, MMPROJ, SUMMARY, *TOKENIZER_FILES))


def micro_checkpoint(folder: Path, *, step=lambda label: None) -> Path:
    """The float32 transformers checkpoint of the micro model published in `folder`, rebuilt
    and proven once, then cached (by the GGUFs' sha256 and the rebuilding code)."""
    folder = Path(folder)
    if not is_micro_folder(folder):
        raise InputError(
            f"{folder} is not a published micro model (it needs {TEXT}, {MMPROJ}, "
            f"{SUMMARY} and the tokenizer files)"
        )
    key = _cache_key(folder / TEXT, folder / MMPROJ)
    target = cache_root() / "micro-hf" / key
    if (target / "hf" / "config.json").is_file() and (target / ROUNDTRIP).is_file():
        return target / "hf"
    # Built beside the cache entry and renamed whole: a killed build leaves no half checkpoint.
    with atomic_directory(target) as scratch:
        step(f"rebuilding the float micro checkpoint from {folder} (once; cached)")
        rebuild(folder, scratch / "hf", scratch / "work")
        step(
            "proof: exporting it to GGUF again and comparing every tensor with the committed files"
        )
        report = roundtrip(scratch / "hf", folder, scratch / "work" / "again")
        (scratch / ROUNDTRIP).write_text(json.dumps(report, indent=2) + "\n")
        if not report["identical"]:
            raise ExportError(
                f"the rebuilt micro checkpoint does not give {folder}'s GGUFs back: "
                f"{report['differences'][:3]}"
            )
        shutil.rmtree(scratch / "work")
    return target / "hf"


def rebuild(folder: Path, out: Path, work: Path) -> dict:
    """Write the micro model of `folder` as a float32 checkpoint into `out` (no proof); returns
    export.gguf.unconvert's report."""
    from export.archs import idefics3
    from export.gguf import files
    from export.gguf.unconvert import fill, probe_checkpoint
    from export.micro.model import build_micro

    summary = json.loads((folder / SUMMARY).read_text())
    if summary.get("arch") != "idefics3":
        raise InputError(
            f"{folder / SUMMARY}: arch {summary.get('arch')!r}; only idefics3 micro models are rebuilt"
        )
    skeleton = build_micro(work / "skeleton", seed=0, tokenizer_dir=folder, **summary["overrides"])
    probe = probe_checkpoint(skeleton, work / "probe")
    prepared = idefics3.prepare(probe, work / "probe-prepared")  # what the export converts
    spec = idefics3.SPEC
    text = files.convert(
        prepared, work / "probe.text.gguf", outtype="f32", pre_tokenizer=spec.pre_tokenizer
    )
    mmproj = files.convert(prepared, work / "probe.mmproj.gguf", outtype="f32", mmproj=True)
    report = fill(probe, [(text, folder / TEXT), (mmproj, folder / MMPROJ)], out)
    if report["unfilled"] or not report["exact"]:
        raise ExportError(
            f"{folder}: not every weight is in its GGUFs at full precision "
            f"(unfilled: {report['unfilled'][:5]})"
        )
    # The recipe marks a checkpoint trained in libmtmd's image layout (a one-tile picture is a
    # 1x1 grid plus the overview); without it `export onnx` cuts pictures as transformers does,
    # a layout the model never saw, and its extractions go wrong (the demo's sample: "3 shapes,
    # GOLD" instead of "2 shapes, EDGE").
    recipe = {key: value for key, value in summary.items() if key not in SUMMARY_ONLY}
    (out / RECIPE_FILE).write_text(json.dumps(recipe, sort_keys=True) + "\n")
    return report


def roundtrip(hf_dir: Path, folder: Path, out: Path) -> dict:
    """Export `hf_dir` as the release does (F16 + F16 mmproj, parity checked against
    transformers) into `out`, and compare every tensor with `folder`'s GGUFs."""
    from export.micro.release import MMPROJ_QUANT, TEXT_QUANT
    from export.pipeline import export_gguf

    report = export_gguf(
        out=out,
        perception=hf_dir,
        quant=TEXT_QUANT,
        mmproj_quant=MMPROJ_QUANT,
        name="micro-roundtrip",
        force=True,
    )
    result = {"parity_validated": report.validated, "files": {}, "differences": []}
    for name in (TEXT, MMPROJ):
        same, differ = compare_tensors(out / name, folder / name)
        result["files"][name] = {"identical_tensors": same, "differing_tensors": len(differ)}
        result["differences"] += [f"{name}: {d}" for d in differ]
    result["identical"] = report.validated and not result["differences"]
    return result


def compare_tensors(a: Path, b: Path) -> tuple[int, list[str]]:
    """(tensors bit-identical, descriptions of those that are not) between two GGUF files."""
    info_a, info_b = read_gguf_info(a), read_gguf_info(b)
    tensors_b = {t.name: t for t in info_b.tensors}
    same, differ = 0, []
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for ta in info_a.tensors:
            tb = tensors_b.pop(ta.name, None)
            if tb is None:
                differ.append(f"{ta.name} only in the new file")
                continue
            if (ta.shape, ta.ggml_type) != (tb.shape, tb.ggml_type):
                differ.append(
                    f"{ta.name}: shape/type {ta.shape}/{ta.ggml_type} vs {tb.shape}/{tb.ggml_type}"
                )
                continue
            fa.seek(info_a.data_offset + ta.offset)
            fb.seek(info_b.data_offset + tb.offset)
            if fa.read(ta.nbytes) == fb.read(tb.nbytes):
                same += 1
            else:
                differ.append(f"{ta.name}: other bytes")
    differ += [f"{name} missing from the new file" for name in tensors_b]
    return same, differ


# The modules whose code decides the rebuilt weights (export/...).
_REBUILDING = (
    "micro/from_gguf.py",
    "micro/model.py",
    "archs/idefics3.py",
    "archs/base.py",
    "gguf/unconvert.py",
    "gguf/runner.py",
    "gguf/converter.py",
)


def _cache_key(*ggufs: Path) -> str:
    from importlib.metadata import version  # not `import transformers`: that takes seconds

    digest = hashlib.sha256()
    for path in ggufs:
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode())
    here = Path(__file__).resolve().parents[1]
    for name in _REBUILDING:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    for dist in ("transformers", "tokenizers", "llama_cpp_python"):
        digest.update(f";{dist}={version(dist)}".encode())
    return digest.hexdigest()[:16]


def main(argv: list[str]) -> int:
    folder = (
        Path(argv[0])
        if argv
        else Path(__file__).resolve().parents[2] / "models" / "micro" / "extract"
    )
    print(micro_checkpoint(folder, step=lambda label: print(label, file=sys.stderr)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
