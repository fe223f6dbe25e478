"""`edge-et bench --against`: a GGUF bundle and the ONNX bundle of the same tiny weights, benched
side by side in one run. Behaviour only (interleaving, fields, ratios present, the bare ONNX
Runtime baseline), never speed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optimum.exporters.onnx")
pytest.importorskip("llama_cpp")

from tests.helpers.onnx_twins import gguf_twin  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TOKENS = (
    "--extract-tokens",
    "5",
    "--think-tokens",
    "4",
    "--answer-tokens",
    "2",
    "--direct-tokens",
    "2",
)


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> dict[str, Path]:
    from export.tiny.onnx import tiny_onnx

    tiny = tiny_onnx(perception="llava-ov-qwen3", reasoning="qwen3", quant="fp32", validate=False)
    return {"onnx": tiny.bundle, "gguf": gguf_twin(tiny, tmp_path_factory.mktemp("gguf"))}


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_two_bundles_are_benched_side_by_side(twins, sample_image, tmp_path):
    out, plot = tmp_path / "compare.json", tmp_path / "compare.png"
    done = _bench(
        "--bundle",
        str(twins["gguf"]),
        "--against",
        str(twins["onnx"]),
        "--image",
        str(sample_image),
        "--trials",
        "2",
        "--warmup",
        "0",
        *TOKENS,
        "--budgets",
        "0,3",
        "--curve-trials",
        "1",
        "--bandwidth-mib",
        "8",
        "--out",
        str(out),
        "--plot",
        str(plot),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == json.loads(out.read_text()) and plot.read_bytes()[:4] == b"\x89PNG"
    gguf, onnx = result["reports"]
    assert {m["backend"] for m in gguf["models"].values()} == {"llama.cpp"}
    assert {m["backend"] for m in onnx["models"].values()} == {"onnx"}
    for report in (gguf, onnx):  # the same fixed work on both backends
        assert len(report["trials"]) == 2 and [r["budget"] for r in report["curve"]] == [0, 3]
        for trial in report["trials"]:
            assert trial["edge"]["extract"]["tokens"] == 5 and trial["edge"]["think"]["tokens"] == 6
            # Every image stage pays its own encode: no embeddings cached from the stage before.
            assert trial["edge"]["direct"]["image_encode_s"] > 0
    # Bare baselines: llama-cpp-python for GGUF, plain onnxruntime for ONNX (text stage only).
    assert gguf["ratios"]["overhead"]["think"]["baseline"] == "bare llama-cpp-python"
    think = onnx["ratios"]["overhead"]["think"]
    assert think["comparable"] and think["baseline"] == "bare onnxruntime" and think["e2e"] > 0
    assert all(t["bare"]["think"]["tokens"] == 6 for t in onnx["trials"])
    assert not onnx["ratios"]["overhead"]["extract"]["comparable"]
    comparison = result["comparison"]
    assert [b["stages"]["reasoning"]["backend"] for b in comparison["bundles"]] == [
        "llama.cpp",
        "onnx",
    ]
    assert comparison["bundles"][1]["stages"]["reasoning"]["quantization"] == "fp32"
    for stage in ("extract", "think", "direct"):
        e2e = comparison["stages"][stage]["e2e_s"]
        assert e2e["ratios_to_first"][0] == pytest.approx(1.0) and e2e["ratios_to_first"][1] > 0
        assert all(m > 0 for m in e2e["medians"])
    # Interleaved: trial 1 runs GGUF then ONNX, trial 2 ONNX then GGUF.
    lines = [line for line in done.stderr.splitlines() if " trial " in line]
    assert [("[1]" in line) for line in lines] == [False, True, True, False]


def test_the_table_names_both_bundles(twins, sample_image):
    done = _bench(
        "--bundle",
        str(twins["gguf"]),
        "--against",
        str(twins["onnx"]),
        "--image",
        str(sample_image),
        "--trials",
        "1",
        "--warmup",
        "0",
        *TOKENS,
        "--budgets",
        "none",
        "--bandwidth-mib",
        "0",
        "--no-direct",
        "--out",
        "/dev/null",
    )
    assert done.returncode == 0, done.stderr
    assert "(llama.cpp)" in done.stdout and "(onnx)" in done.stdout and "ratio" in done.stdout


def test_a_bad_second_bundle_is_one_line(twins, tmp_path):
    done = _bench("--bundle", str(twins["gguf"]), "--against", str(tmp_path / "missing"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
