"""Every graph of a package folder to the ORT format, with the operator config of a minimal build.

`python -m onnxruntime.tools.convert_onnx_models_to_ort` (in a subprocess: it prints, and its
optimization level is read from the environment) converts every `.onnx` under the folder:

- optimization style Fixed at level `basic`: only the provider-independent rewrites (constant
  folding, redundant nodes), so CoreML, NNAPI and XNNPACK still see plain ONNX operators; the
  fusions of level `all` would make CPU-only contrib nodes that no accelerator takes;
- target platform arm: no x86-only layout (NCHWc) is baked in, so the files run on a phone and
  (as tested here) on x86.

It also writes `required_operators.config`: the operators (per domain and opset) that a
reduced-size ONNX Runtime build must keep (`build.sh --minimal_build --include_ops_by_config`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edge_et.errors import ExportError
from export.onnx.text import total_bytes

OPTIMIZATION_LEVEL = "basic"
OPS_CONFIG = "required_operators.config"
# An ORT-format file is one flatbuffer, with no external data: flatbuffers address at most
# 2 GiB. Checked before converting, because onnxruntime only fails at the end of the
# conversion (minutes for a 1.5B reasoner) with "Failed to save ORT format model".
ORT_FORMAT_MAX_BYTES = 2**31 - 1


def convert_folder(folder: Path, *, timeout: float = 3600) -> dict:
    """Convert every .onnx under `folder` in place (the .onnx and its data are removed, each
    `<name>.ort` stays) and write OPS_CONFIG at its top; what was done and with which ORT."""
    import onnxruntime

    check_fits_ort_format(folder)
    env = {**os.environ, "ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL": OPTIMIZATION_LEVEL}
    command = [
        sys.executable,
        "-m",
        "onnxruntime.tools.convert_onnx_models_to_ort",
        str(folder),
        "--optimization_style",
        "Fixed",
        "--target_platform",
        "arm",
    ]
    done = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ExportError(f"onnxruntime's ORT-format conversion failed: {tail[0]}")
    converted = _settle(folder)
    config = folder / OPS_CONFIG
    (folder / f"required_operators.{OPTIMIZATION_LEVEL}.config").replace(config)
    _relative_comments(config, folder)
    return {
        "onnxruntime_version": onnxruntime.__version__,
        "needs": f"onnxruntime {onnxruntime.__version__} or newer (the ORT format is read by "
        "the same or a later ONNX Runtime)",
        "optimization": f"{OPTIMIZATION_LEVEL} (Fixed), target platform arm",
        "ops_config": OPS_CONFIG,
        "graphs": converted,
    }


def check_fits_ort_format(folder: Path) -> None:
    """ExportError naming the first graph (with its external data) too large for one ORT file."""
    for graph in sorted(Path(folder).rglob("*.onnx")):
        size = total_bytes(graph)
        if size > ORT_FORMAT_MAX_BYTES:
            raise ExportError(
                f"{graph.relative_to(folder)} is {size / 2**30:.2f} GiB with its weights; an "
                f"ORT-format file holds at most 2 GiB: package it with fewer bits (--quant int4), "
                "a quantized token embedding (--embedding int8 or int4) or a smaller model"
            )


def _settle(folder: Path) -> list[str]:
    """`x.basic.ort` → `x.ort`, the source graphs (and their external data) removed."""
    converted = []
    for ort in sorted(folder.rglob(f"*.{OPTIMIZATION_LEVEL}.ort")):
        final = ort.with_name(ort.name.replace(f".{OPTIMIZATION_LEVEL}.ort", ".ort"))
        ort.replace(final)
        source = final.with_suffix(".onnx")
        for path in (
            source,
            source.with_name(source.name + "_data"),
            source.with_name(source.name + ".data"),
        ):
            path.unlink(missing_ok=True)
        converted.append(final.relative_to(folder).as_posix())
    if not converted:
        raise ExportError("onnxruntime's ORT-format conversion wrote no .ort file")
    return converted


def _relative_comments(config: Path, folder: Path) -> None:
    """The config names the models it came from by absolute path (a scratch folder): relative."""
    root = str(folder.resolve()) + os.sep
    text = config.read_text(encoding="utf-8").replace(root, "")
    config.write_text(text.replace(f".{OPTIMIZATION_LEVEL}.ort", ".ort"), encoding="utf-8")
