"""SIGTERM in the middle of a real `edge-et export gguf`, `export onnx` or `export mobile`: nothing
at --out, no partial folder left."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_et.bundle.manifest import Bundle
from edge_et.errors import BundleError

ROOT = Path(__file__).resolve().parents[2]


def terminate_mid_export(export: list[str], folder: Path, written: str) -> None:
    """Run `edge-et export ...`, SIGTERM it once `written` (a glob under `folder`) exists, i.e.
    mid-export, and check what a SIGTERM must leave: exit 143, one line, nothing in `folder`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_et.cli.main", "export", *export],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and not any(folder.glob(written)):
        time.sleep(0.05)
    assert process.poll() is None, "the export finished before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    assert list(folder.iterdir()) == []  # neither --out nor the partial folder


@pytest.mark.slow
def test_sigterm_mid_export_leaves_no_bundle_that_validates(tiny_bundle, tmp_path):
    hf, out = tiny_bundle.parent / "hf", tmp_path / "bundle"
    terminate_mid_export(
        [
            "gguf",
            "--perception",
            str(hf / "qwen2vl"),
            "--reasoning",
            str(hf / "qwen3"),
            "--quant",
            "F16",
            "--no-validate",
            "--out",
            str(out),
        ],
        tmp_path,
        "bundle.partial-*/bundle/*.gguf",
    )
    with pytest.raises(BundleError):
        Bundle.load(out)


@pytest.mark.slow
def test_sigterm_mid_onnx_export_leaves_no_bundle(tiny_bundle, tmp_path):
    pytest.importorskip("optimum.exporters.onnx")
    hf = tiny_bundle.parent / "hf"
    terminate_mid_export(
        [
            "onnx",
            "--perception",
            str(hf / "qwen2vl"),
            "--reasoning",
            str(hf / "qwen3"),
            "--no-validate",
            "--out",
            str(tmp_path / "bundle"),
        ],
        tmp_path,
        "bundle.partial-*/**/*.onnx",
    )


@pytest.mark.slow
def test_sigterm_mid_mobile_export_leaves_no_package(tmp_path):
    pytest.importorskip("optimum.exporters.onnx")
    from export.tiny.onnx import tiny_onnx

    # The tiny ONNX bundle tests/export/test_mobile.py packages (built once, cached).
    source = tiny_onnx(
        perception="llava-ov-qwen3", reasoning="qwen3", quant="fp32", validate=False
    ).bundle
    terminate_mid_export(
        ["mobile", "--bundle", str(source), "--out", str(tmp_path / "pkg"), "--quant", "int4"],
        tmp_path,
        "pkg.partial-*/package/*/*.onnx",
    )
