"""`edge-et export gguf` end to end: HF checkpoints in, a validated bundle the runtime runs out."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_et.bundle.manifest import Bundle
from edge_et.runtime.pipeline import Pipeline, RunOptions

ROOT = Path(__file__).resolve().parents[2]


def edge_et(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def hf_dirs(tiny_bundle):
    hf = tiny_bundle.parent / "hf"
    return {"perception": hf / "qwen2vl", "reasoning": hf / "qwen3"}


@pytest.fixture(scope="module")
def exported(hf_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "bundle"
    done = edge_et(
        "export",
        "gguf",
        "--perception",
        str(hf_dirs["perception"]),
        "--reasoning",
        str(hf_dirs["reasoning"]),
        "--quant",
        "Q4_K_M",
        "--mmproj-quant",
        "Q8_0",
        "--out",
        str(out),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout)


def test_export_writes_a_validated_bundle_the_runtime_runs(exported, sample_image):
    out, report = exported
    assert report["validated"] is True
    parity = json.loads((out / "parity.json").read_text())
    assert set(parity) == {
        "perception",
        "reasoning",
        "perception_f16_source",
        "reasoning_f16_source",
    }
    assert all(report["ok"] for report in parity.values())
    files = {row["file"]: row for row in report["files"]}
    assert files["reasoning.Q4_K_M.gguf"]["quant"] == "Q4_K_M"
    assert files["reasoning.Q4_K_M.gguf"]["bits_per_weight"] < 6.5
    # The converter keeps small vision tensors (norms, biases) in f32: an mmproj stays above 8.5.
    assert 8.5 <= files["mmproj.Q8_0.gguf"]["bits_per_weight"] < 17
    bundle = Bundle.load(out, verify_checksums=True)
    assert bundle.reasoning.thinking is True  # the Qwen3 template knows <think>
    with Pipeline(bundle) as pipeline:
        result = pipeline.run(
            sample_image,
            "What is it?\nA. x\nB. y",
            RunOptions(seed=0, think_budget=8, answer_budget=4),
        )
    assert result.stages["extract"].image_encode_s > 0


def test_human_output_has_a_summary_table(hf_dirs, tmp_path):
    done = edge_et(
        "export",
        "gguf",
        "--reasoning",
        str(hf_dirs["reasoning"]),
        "--quant",
        "F16",
        "--no-validate",
        "--out",
        str(tmp_path / "b"),
    )
    assert done.returncode == 0, done.stderr
    assert "bits/weight" in done.stdout and "reasoning.F16.gguf" in done.stdout
    assert "not validated" in done.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--quant", "Q3_X"], "choose one of: F32, F16, Q8_0, Q6_K, Q5_K_M, Q4_K_M"),
        (["--mmproj-quant", "Q4_K_M"], "--mmproj-quant 'Q4_K_M' is not supported"),
        ([], "give --perception HF_DIR, --reasoning HF_DIR, or both"),
    ],
)
def test_bad_export_options_are_one_line(tmp_path, args, fragment):
    done = edge_et("export", "gguf", "--out", str(tmp_path / "b"), *args)
    assert done.returncode == 2 and fragment in done.stderr and "Traceback" not in done.stderr


def test_text_model_as_perception_and_non_checkpoint_are_refused(hf_dirs, tmp_path):
    done = edge_et(
        "export", "gguf", "--perception", str(hf_dirs["reasoning"]), "--out", str(tmp_path / "b")
    )
    assert done.returncode == 2 and "needs a vision-language model" in done.stderr
    done = edge_et("export", "gguf", "--reasoning", str(tmp_path), "--out", str(tmp_path / "b"))
    assert done.returncode == 2 and "no config.json" in done.stderr


def test_non_empty_out_needs_force(hf_dirs, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("x")
    done = edge_et(
        "export", "gguf", "--reasoning", str(hf_dirs["reasoning"]), "--out", str(tmp_path / "b")
    )
    assert done.returncode == 2 and "--force" in done.stderr
    assert (tmp_path / "b" / "keep.txt").exists()
