"""`edge-et export mobile`: put a mobile package together and publish it in one rename.

From an ONNX bundle (or Hugging Face checkpoints, exported to a float ONNX bundle first; or a
GGUF bundle, whose stages are read back into float checkpoints first: export/mobile/from_gguf.py):

1. per stage, the graphs: the reasoner at int4/int8 (export/mobile/graphs.py), the vision
   encoder with its batch of views fixed, the perception decoder and embeddings as they are;
2. ONNX Runtime's usability checker on every graph (what NNAPI and CoreML would take);
3. every graph to `.ort`, with `required_operators.config` (export/mobile/ort_format.py);
4. parity against the source bundle and each stage's peak RSS, in worker subprocesses
   (export/parity/mobile.py), through the runtime itself;
5. `bundle.json` and `mobile.json` (export/mobile/manifest.py), then the rename.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edge_et.bundle.manifest import Bundle
from edge_et.core.atomic import partial_directory, publish_directory
from edge_et.errors import ExportError, InputError
from edge_et.formats.onnx_stage import STAGE_CONFIG
from export.mobile import graphs, manifest
from export.mobile.from_gguf import float_checkpoints, is_gguf_bundle
from export.mobile.ort_format import convert_folder
from export.mobile.usability import check_usability
from export.mobile.web import WEB_ACCURACY_LEVEL, web_section
from export.parity.launcher import run_worker
from export.pipeline import StepReporter, arch_spec_for, check_output

PARITY_FILE = "parity.json"
WORKER_TIMEOUT = 3600


def check_choices(target: str, quant: str, embedding: str = graphs.DEFAULT_EMBEDDING) -> None:
    if target not in manifest.TARGETS:
        raise InputError(f"--target {target!r}: choose one of {', '.join(manifest.TARGETS)}")
    if quant not in graphs.QUANT_BITS:
        raise InputError(f"--quant {quant!r}: choose one of {', '.join(graphs.QUANT_BITS)}")
    if embedding not in graphs.EMBEDDINGS:
        raise InputError(f"--embedding {embedding!r}: choose one of {', '.join(graphs.EMBEDDINGS)}")


def export_mobile(
    *,
    out: Path,
    bundle: Path | None = None,
    perception: Path | None = None,
    reasoning: Path | None = None,
    target: str = "android",
    quant: str = "int4",
    embedding: str = graphs.DEFAULT_EMBEDDING,
    name: str | None = None,
    force: bool = False,
    web: bool = False,
    step: StepReporter = lambda label: None,
) -> dict:
    """Write the mobile package of `bundle` (or of the checkpoints) to `out`; returns mobile.json.
    `embedding`: the reasoner's token embedding, int8, int4 or float (graphs.EMBEDDINGS).
    `web`: for a web page (ONNX Runtime Web): the reasoner computes in fp32 as WebAssembly
    does, and mobile.json gains its `web` section (export/mobile/web.py)."""
    check_choices(target, quant, embedding)
    if (bundle is None) == (perception is None and reasoning is None):
        raise InputError(
            "give --bundle ONNX_OR_GGUF_BUNDLE, or --perception/--reasoning HF_DIR (not both)"
        )
    for role, folder in (("perception", perception), ("reasoning", reasoning)):
        if folder is not None:  # checked before any work, as `export gguf` and `export onnx` do
            arch_spec_for(Path(folder), role)
    out = Path(out)
    check_output(out, force)
    # Built in OUT.partial-XXXX beside `out`, renamed whole: a reader (or a kill) never sees
    # half a package.
    with partial_directory(out) as scratch:
        settings = None
        if bundle is None:
            bundle = _float_bundle(scratch / "source", perception, reasoning, step=step)
        elif is_gguf_bundle(gguf := Bundle.load(bundle)):
            bundle = _float_bundle(
                scratch / "source", name=gguf.name, step=step, **float_checkpoints(gguf, step=step)
            )
            settings = gguf
        source = _onnx_bundle(bundle)
        if settings is not None:
            # The float ONNX bundle in between has no settings of its own: the package decodes
            # and prompts as the GGUF bundle does (the demo's reasoner is greedy, 384 tokens;
            # without this the package sampled at the paper's 0.7).
            source.prompts, source.decoding, source.memory = (
                settings.prompts,
                settings.decoding,
                settings.memory,
            )
        package = scratch / "package"
        data = build_package(
            source,
            package,
            target=target,
            quant=quant,
            embedding=embedding,
            name=name or out.name,
            step=step,
            web=web,
        )
        publish_directory(package, out)
    return data


def _float_bundle(
    out: Path, perception=None, reasoning=None, *, name: str | None = None, step: StepReporter
) -> Path:
    from export.onnx.pipeline import export_onnx

    step("exporting the checkpoints to a float ONNX bundle first")
    export_onnx(
        out=out, perception=perception, reasoning=reasoning, quant="fp32", name=name, step=step
    )
    return out


def _onnx_bundle(path: Path) -> Bundle:
    source = Bundle.load(path)
    for stage in source.stages():
        if stage.backend != "onnx":
            raise InputError(
                f"the {stage.role} stage of '{source.name}' runs on {stage.backend}; "
                "export mobile takes an ONNX bundle (`edge-et export onnx`) or a GGUF "
                "bundle of edge-et's micro perception and a transformers-readable reasoner"
            )
    return source


def build_package(
    source: Bundle,
    package: Path,
    *,
    target: str,
    quant: str,
    embedding: str,
    name: str,
    step: StepReporter,
    web: bool = False,
) -> dict:
    """Everything of the package in the folder `package` (not yet published)."""
    stages, entries = {}, {}
    level = WEB_ACCURACY_LEVEL if web else None
    for spec in source.stages():
        step(f"{spec.role}: graphs ({quant if spec.role == 'reasoning' else 'own precision'})")
        stages[spec.role] = _stage_graphs(spec, package / spec.role, quant, embedding, level)
        step(f"{spec.role}: ONNX Runtime's mobile usability checker")
        stages[spec.role]["usability"] = _usability(package / spec.role)
    step("converting every graph to the ORT format")
    conversion = convert_folder(package)
    for spec in source.stages():
        entries[spec.role] = _settle_stage(spec, package / spec.role, quant, stages[spec.role])
    manifest.write_bundle(
        package,
        name=name,
        source=source,
        entries=entries,
        description=f"mobile package ({target}, reasoner {quant}) of "
        f"'{source.name}': ORT-format graphs",
    )
    step("parity against the source bundle (subprocess)")
    parity = _worker(
        "mobile-parity", {"source": str(source.path), "package": str(package), "quant": quant}
    )
    manifest.write_json(package / PARITY_FILE, parity)
    rss = {}
    for role in entries:
        step(f"{role}: peak RSS of the stage alone (subprocess)")
        rss[role] = _worker("mobile-rss", {"package": str(package), "role": role})
    return json.loads(
        manifest.write_mobile(
            package,
            name=name,
            target=target,
            quant=quant,
            source=source,
            conversion=conversion,
            embedding=stages.get("reasoning", {}).get("embedding"),
            entries=entries,
            web=web_section(package, entries) if web else None,
            stages=stages,
            parity=_verdicts(parity),
            rss=rss,
        ).read_text()
    )


def _stage_graphs(spec, folder: Path, quant: str, embedding: str, level: int | None = None) -> dict:
    """The stage's graphs at their package precision (still .onnx) and its other files."""
    folder.mkdir(parents=True)
    source = Path(spec.model_path).parent
    config = dict(spec.onnx_config)
    for name in [STAGE_CONFIG] + [Path(f).name for f in spec.extra_files]:
        if not name.endswith((".onnx", ".onnx_data", ".onnx.data")):
            shutil.copyfile(source / name, folder / name)
    record = {"config": STAGE_CONFIG, "tokenizer": config.get("tokenizer", "tokenizer.json")}
    if spec.role == "reasoning":
        record.update(
            graphs.quantize_reasoner(
                spec.model_path, folder / "decoder.onnx", quant, embedding, accuracy_level=level
            )
        )
        return record
    graphs.copy_graph(spec.model_path, folder / "decoder.onnx")
    record["decoder"] = f"{config.get('quant', 'fp32')}, as exported"
    if config.get("embed"):
        graphs.copy_graph(source / config["embed"], folder / "embed.onnx")
    kind = (config.get("vision") or {}).get("kind", "")
    record["vision"] = graphs.fix_vision_shapes(spec.mmproj_path, folder / "vision.onnx", kind)
    return record


def _usability(folder: Path) -> dict:
    """The checker's verdicts per graph; its full logs in `usability/<role>-<graph>.txt`."""
    found, logs = {}, folder.parent / "usability"
    logs.mkdir(exist_ok=True)
    for graph in sorted(folder.glob("*.onnx")):
        result = check_usability(graph)
        log = result.pop("log", None)
        if log:
            name = f"{folder.name}-{graph.stem}.txt"
            (logs / name).write_text(log, encoding="utf-8")
            result["log"] = f"usability/{name}"
        found[f"{graph.stem}.ort"] = result
    return found


def _settle_stage(spec, folder: Path, quant: str, record: dict) -> dict:
    """The stage's onnx_config.json pointed at the .ort graphs; its bundle.json entry."""
    config = json.loads((folder / STAGE_CONFIG).read_text(encoding="utf-8"))
    if config.get("embed"):
        config["embed"] = "embed.ort"
    if config.get("vision"):
        config["vision"]["file"] = "vision.ort"
    if spec.role == "reasoning":
        config["quant"] = quant
    manifest.write_json(folder / STAGE_CONFIG, config)
    role = spec.role
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    main = {"decoder.ort", "vision.ort", STAGE_CONFIG}
    entry = {
        "backend": "onnx",
        "model": f"{role}/decoder.ort",
        "arch": spec.arch,
        "extra_files": [f"{role}/{f}" for f in files if f not in main],
        "random_weights": spec.random_weights,
        "source": f"{spec.source}; as a mobile package (ORT format)",
    }
    if spec.n_ctx:
        entry["n_ctx"] = spec.n_ctx
    if role == "perception":
        entry["mmproj"] = f"{role}/vision.ort"
    else:
        entry["thinking"] = spec.thinking
    record["graphs"] = sorted(f for f in files if f.endswith(".ort"))
    return entry


def _worker(kind: str, request: dict) -> dict:
    result = run_worker(kind, request, timeout=WORKER_TIMEOUT, label=f"the {kind} check")
    if isinstance(result, str):
        raise ExportError(result)
    return result


def _verdicts(parity: dict) -> dict:
    """Per role: passes, bounds, failures and the headline numbers (parity.json has the rest)."""
    return {
        role: {
            "passes": s["passes"],
            "bounds": s["bounds"],
            "failures": s["failures"],
            "rel_rms": s["text"].get("rel_rms"),
            "argmax_agreement": s["text"].get("argmax_agreement"),
            "greedy_equal": s["greedy"]["equal"],
            "greedy_first_diff": s["greedy"]["first_diff"],
            **({"image_cosine": s["vision"].get("cosine")} if "vision" in s else {}),
            "file": PARITY_FILE,
        }
        for role, s in parity.items()
    }
