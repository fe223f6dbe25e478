"""The GGUF parity check's measuring side: runs the text and vision measurements in this
process and wraps them into the report that `export.parity.gguf` judges.

`export.parity.gguf.run_parity` runs `measure` in a worker subprocess (kind "gguf" of
export/parity/worker.py); `check_text` and `check_vision` run one section here, for debugging.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from export.parity.gguf import (
    FORMAT,
    default_threads,
    mmproj_thresholds,
    passes,
    text_thresholds,
)
from export.parity.gguf_text import text_report
from export.parity.gguf_vision import vision_report


def check_text(hf_dir: Path, gguf_path: Path, *, quant: str, threads: int | None = None) -> dict:
    """Compare the text GGUF with `hf_dir` in this process; returns a report with "text"."""
    thresholds = text_thresholds(quant)
    return _report(
        hf_dir,
        quant=quant,
        text=_guarded(
            text_report, Path(hf_dir), Path(gguf_path), threads=threads or default_threads()
        ),
        thresholds={"text": asdict(thresholds)},
    )


def check_vision(
    hf_dir: Path,
    text_gguf: Path,
    mmproj_gguf: Path,
    *,
    quant: str,
    mmproj_quant: str,
    threads: int | None = None,
) -> dict:
    """Compare the mmproj (with the text GGUF) with `hf_dir` in this process ("vision")."""
    thresholds = {
        "text": asdict(text_thresholds(quant)),
        "mmproj": asdict(mmproj_thresholds(mmproj_quant)),
    }
    return _report(
        hf_dir,
        quant=quant,
        mmproj_quant=mmproj_quant,
        thresholds=thresholds,
        vision=_guarded(
            vision_report,
            Path(hf_dir),
            Path(text_gguf),
            Path(mmproj_gguf),
            threads=threads or default_threads(),
        ),
    )


def measure(
    hf_dir: str,
    *,
    text_gguf: str,
    mmproj_gguf: str | None = None,
    quant: str,
    mmproj_quant: str | None = None,
    threads: int | None = None,
) -> dict:
    """Both checks in this process: what the "gguf" worker runs. Adds `ok` and `first_failure`."""
    started = time.perf_counter()
    report = check_text(Path(hf_dir), Path(text_gguf), quant=quant, threads=threads)
    if mmproj_gguf:
        vision = check_vision(
            Path(hf_dir),
            Path(text_gguf),
            Path(mmproj_gguf),
            quant=quant,
            mmproj_quant=mmproj_quant or "F16",
            threads=threads,
        )
        report.update(
            mmproj_quant=vision["mmproj_quant"],
            vision=vision["vision"],
            thresholds=vision["thresholds"],
        )
    report["seconds"] = round(time.perf_counter() - started, 2)
    ok, failure = passes(report)
    report["ok"], report["first_failure"] = ok, failure or None
    return report


def _guarded(fn, *args, **kwargs) -> dict:
    """Run one check; a crash becomes that section's `error`, so the other section still runs."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every failure must land in the report
        return {"error": f"{type(exc).__name__}: {exc}".strip().splitlines()[0]}


def _report(hf_dir: Path, *, quant: str, mmproj_quant: str | None = None, **sections) -> dict:
    config = Path(hf_dir) / "config.json"
    model_type = json.loads(config.read_text()).get("model_type") if config.is_file() else None
    return {
        "format": FORMAT,
        "hf_dir": str(Path(hf_dir).resolve()),
        "model_type": model_type,
        "quant": str(quant).upper(),
        "mmproj_quant": str(mmproj_quant).upper() if mmproj_quant else None,
        "versions": _versions(),
        **sections,
    }


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("torch", "transformers", "llama_cpp_python"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = None
    return found
