"""`edge-et eval` on an ONNX bundle, with `--device` choosing the execution provider as `run` does."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optimum.exporters.onnx")

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
FAST = {
    "extract": {"temperature": 0.0, "max_tokens": 8},
    "direct": {"temperature": 0.0, "max_tokens": 4},
    "think": {"temperature": 0.0, "budget": 6, "answer_budget": 6},
}


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory) -> Path:
    """The tiny LLaVA-OV + Qwen3 ONNX bundle with short stages (a copy: the cache stays as built)."""
    import shutil

    from export.tiny.onnx import tiny_onnx

    tiny = tiny_onnx(perception="llava-ov-qwen3", reasoning="qwen3", quant="fp32", validate=False)
    copy = tmp_path_factory.mktemp("onnx-eval") / "bundle"
    shutil.copytree(tiny.bundle, copy)
    manifest = json.loads((copy / "bundle.json").read_text())
    manifest["decoding"] = FAST
    (copy / "bundle.json").write_text(json.dumps(manifest))
    return copy


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory, sample_image) -> Path:
    path = tmp_path_factory.mktemp("onnx-eval-data") / "data.jsonl"
    rows = [
        {
            "image": str(sample_image),
            "question": "What shape is red?",
            "options": {"A": "circle", "B": "square", "C": "star", "D": "tree"},
            "answer": "A",
            "category": "color",
            "id": f"q{i}",
        }
        for i in range(2)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_runs_an_onnx_bundle_on_the_device_asked(onnx_bundle, eval_file):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "eval",
            "--bundle",
            str(onnx_bundle),
            "--data",
            str(eval_file),
            "--mode",
            "direct",
            "--mode",
            "extract-think",
            "--device",
            "nnapi",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["questions"] == 2 and list(report["modes"]) == ["direct", "extract-think"]
    assert all(m["scored"] == 2 for m in report["modes"].values())
    warnings = [line for line in done.stderr.splitlines() if "NnapiExecutionProvider" in line]
    assert len(warnings) == 1 and "running on the CPU" in warnings[0]


def test_eval_refuses_an_npu_for_a_llama_cpp_bundle(tiny_bundle, eval_file):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "eval",
            "--bundle",
            str(tiny_bundle),
            "--data",
            str(eval_file),
            "--device",
            "coreml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "ONNX Runtime provider" in done.stderr
    assert "Traceback" not in done.stderr
