"""Broken or mismatched real model files: one line, exit code 2, found as early as possible."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def copy_bundle(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def run_cli(bundle: Path, image: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "run",
            "--bundle",
            str(bundle),
            "--image",
            str(image),
            "--question",
            "Q?",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line(done: subprocess.CompletedProcess, fragment: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_truncated_gguf_is_caught_by_validation(tiny_bundle, sample_image, tmp_path):
    bundle = copy_bundle(tiny_bundle, tmp_path / "b")
    model = bundle / "reasoning.f16.gguf"
    model.write_bytes(model.read_bytes()[: model.stat().st_size * 2 // 3])
    assert_one_line(run_cli(bundle, sample_image), "truncated")


def test_mmproj_of_another_model_is_refused_by_libmtmd(tiny_bundle, sample_image, tmp_path):
    bundle = copy_bundle(tiny_bundle, tmp_path / "b")
    manifest = json.loads((bundle / "bundle.json").read_text())
    # The Qwen3 text model (hidden 256) with the Qwen2-VL projector (output 128).
    manifest["perception"]["model"] = "reasoning.f16.gguf"
    manifest["perception"]["arch"] = "qwen3"
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    assert_one_line(run_cli(bundle, sample_image), "mismatch between text model")


def test_corrupted_tensor_table_is_refused_before_loading(tiny_bundle, sample_image, tmp_path):
    bundle = copy_bundle(tiny_bundle, tmp_path / "b")
    model = bundle / "mmproj.f16.gguf"
    data = bytearray(model.read_bytes())
    data[8:16] = (10**9).to_bytes(8, "little")  # an absurd tensor count
    model.write_bytes(bytes(data))
    assert_one_line(run_cli(bundle, sample_image), "broken")
