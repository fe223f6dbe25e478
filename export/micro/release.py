"""Export trained micro perception models to GGUF bundles and publish them into the repository.

    edge-et export release --run models/store/micro/extract --publish models/micro/extract

Each run's OUT/hf goes through the project's export path (export.pipeline.export_gguf: the
llama.cpp converter, the mmproj, and the parity check against transformers in a
subprocess) into OUT/gguf. `--publish` then copies the text GGUF, the mmproj, parity.json and
the training summary into a folder that is committed (models/micro/<form>/): a few MB, so
`make demo` needs no training. F16 for both files: the models are small enough that a
quantized copy saves little and only costs accuracy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edge_et.errors import InputError
from export.bundle import Stage, write_bundle
from export.pipeline import export_gguf

TEXT_QUANT, MMPROJ_QUANT = "F16", "F16"
PUBLISHED = ("perception.F16.gguf", "mmproj.F16.gguf", "parity.json")
# The tokenizer beside them, so that tests can rebuild training sequences without the HF dir.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SUMMARY = "train_summary.json"
# A trained model ends its text itself; the limits only bound a runaway.
DECODING = {
    "extract": {"max_tokens": 320},
    "caption": {"max_tokens": 320},
    "direct": {"max_tokens": 64},
}


def export_run(run: Path, *, force: bool = True) -> Path:
    """Export `run`/hf into `run`/gguf with parity checks; return the bundle folder."""
    run = Path(run)
    if not (run / "hf" / "config.json").is_file():
        raise InputError(f"{run} holds no trained checkpoint (expected {run}/hf/config.json)")
    report = export_gguf(
        out=run / "gguf",
        perception=run / "hf",
        quant=TEXT_QUANT,
        mmproj_quant=MMPROJ_QUANT,
        name=f"micro-{run.name}",
        force=force,
    )
    if not report.validated:
        raise InputError(f"the export of {run} was not validated")
    return report.bundle


def publish(run: Path, target: Path) -> list[Path]:
    """Copy the exported files of `run` and its training summary into `target`."""
    run, target = Path(run), Path(target)
    bundle = run / "gguf"
    missing = [name for name in PUBLISHED if not (bundle / name).is_file()]
    if missing:
        raise InputError(f"{bundle} lacks {', '.join(missing)}; export the run first")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PUBLISHED:
        written.append(Path(shutil.copy2(bundle / name, target / name)))
    for name in TOKENIZER_FILES:
        if (run / "hf" / name).is_file():
            written.append(Path(shutil.copy2(run / "hf" / name, target / name)))
    summary = json.loads((run / SUMMARY).read_text())
    (target / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    written.append(target / SUMMARY)
    # A perception-only bundle in place, so the folder runs as it is (edge-et run --mode extract).
    form = summary.get("form", run.name)
    write_bundle(
        target,
        name=f"micro-{form}",
        description=f"micro perception model ({form} form)",
        perception=Stage(
            target / PUBLISHED[0],
            mmproj=target / PUBLISHED[1],
            n_ctx=2048,
            random_weights=False,
            source=source_line(summary),
        ),
        decoding=DECODING,
    )
    written.append(target / "bundle.json")
    return written


def source_line(summary: dict) -> str:
    """Where the weights came from, for bundle.json."""
    return (
        f"edge-et micro Idefics3 trained from scratch by export.micro.train "
        f"(seed {summary.get('seed')}: {describe_training(summary)})"
    )


def describe_training(summary: dict) -> str:
    """A run and the runs it continued (`init`, nested), oldest first, by form:
    "caption 1200 steps, then extract 200 + 400 + 1200 steps (batch 16; 3000 steps in all)"."""
    runs, run = [], summary
    while isinstance(run, dict):
        runs.append(run)
        run = run.get("init")
    groups: list[tuple[str, list[int]]] = []
    for run in reversed(runs):
        if groups and groups[-1][0] == run.get("form"):
            groups[-1][1].append(int(run.get("steps", 0)))
        else:
            groups.append((run.get("form"), [int(run.get("steps", 0))]))
    parts = [f"{form} {' + '.join(map(str, steps))} steps" for form, steps in groups]
    batches = sorted({int(r.get("batch", 0)) for r in runs})
    total = sum(sum(steps) for _, steps in groups)
    return ", then ".join(parts) + f" (batch {'/'.join(map(str, batches))}; {total} steps in all)"
