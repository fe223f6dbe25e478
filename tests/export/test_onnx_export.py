"""`export onnx` on the tiny checkpoint of every supported architecture, validated against
transformers (parity.json): fp32 greedy tokens equal transformers' and logits within 1e-3;
int8 and fp16 within their documented bounds (export/parity/onnx.py).

Each bundle is built once per recipe into the cache (export/tiny/onnx.py): cold, the export
and its parity subprocess take 10-25 s per architecture on 2 cores; warm, nothing runs.
"""

import json

import pytest

pytest.importorskip("optimum.exporters.onnx")

from edge_et.bundle.manifest import Bundle  # noqa: E402
from edge_et.errors import EdgeEtError  # noqa: E402
from export import archs  # noqa: E402
from export.onnx.vision import EXPORTERS  # noqa: E402
from export.parity.onnx import passes, thresholds  # noqa: E402
from export.tiny.onnx import tiny_onnx  # noqa: E402

pytestmark = pytest.mark.slow
REASONING = ("qwen3", "qwen2", "llama", "gemma3_text")
PERCEPTION = ("llava-ov-qwen3", "llava-ov-qwen2", "qwen2vl", "qwen25vl", "idefics3")
# (architecture, precision) pairs beyond fp32: each precision on one text and one vision model.
OTHER_PRECISIONS = (
    ("qwen3", "int8"),
    ("qwen3", "fp16"),
    ("llava-ov-qwen3", "int8"),
    ("llava-ov-qwen3", "fp16"),
    ("qwen2vl", "int8"),
    ("qwen2vl", "fp16"),
    ("qwen25vl", "int8"),
    ("qwen25vl", "fp16"),
    ("idefics3", "int8"),
    ("idefics3", "fp16"),
)


def _report(arch: str, quant: str) -> tuple[dict, Bundle]:
    role = archs.get(arch).role
    bundle = tiny_onnx(**{role: arch}, quant=quant).bundle
    return json.loads((bundle / "parity.json").read_text())[role], Bundle.load(bundle)


def test_every_reasoning_architecture_and_the_onnx_perception_ones_are_covered():
    assert set(REASONING) == set(archs.names(role="reasoning"))
    # Every vision exporter has a tiny model here (SmolVLM shares Idefics3's).
    vlms = {t.split("/")[0] for a in PERCEPTION for t in archs.get(a).model_types}
    assert set(EXPORTERS) <= vlms


@pytest.mark.parametrize("arch", REASONING + PERCEPTION)
def test_fp32_export_matches_transformers(arch):
    report, bundle = _report(arch, "fp32")
    assert passes(report) == (True, "")
    assert report["greedy"]["equal"] and report["greedy"]["hf"]
    assert report["text"]["summary"]["max_abs"] < 1e-4
    assert not report["text"]["tokenization"]["mismatches"]
    stage = bundle.stages()[0]
    assert stage.backend == "onnx" and stage.arch == arch
    if "vision" in report:
        vision = report["vision"]
        assert vision["pixels"]["max_abs"] <= 1e-6  # numpy preprocessing == the HF processor
        assert vision["embeddings"]["cosine"] > 0.99999 and vision["greedy"]["equal"]


@pytest.mark.parametrize(("arch", "quant"), OTHER_PRECISIONS)
def test_int8_and_fp16_stay_within_their_bounds(arch, quant):
    report, _ = _report(arch, quant)
    fp32, _ = _report(arch, "fp32")
    assert passes(report) == (True, "")
    bound = thresholds(quant).text.max_abs * max(1.0, report["text"]["summary"]["ref_abs_max"])
    assert report["text"]["summary"]["max_abs"] <= bound
    assert (
        report["text"]["summary"]["max_abs"] > fp32["text"]["summary"]["max_abs"]
    )  # really changed


def test_int8_matmul_weights_are_8_bit_blocks_of_32():
    """int8 = MatMulNBits (weight-only, 32 weights per scale, int8 compute): every constant MatMul
    weight is replaced, its bytes (weights + scales) about a quarter of float32's; the token
    embedding Gather stays float32 (onnxruntime's block-quantized Gather takes 4 bits only)."""
    import onnx
    from onnx import numpy_helper

    graphs = {
        q: onnx.load(
            str(tiny_onnx(reasoning="qwen3", quant=q).bundle / "reasoning" / "decoder.onnx")
        )
        for q in ("fp32", "int8")
    }
    weights = {
        q: {t.name: numpy_helper.to_array(t) for t in g.graph.initializer}
        for q, g in graphs.items()
    }
    fp32_matmul = sum(
        weights["fp32"][n.input[1]].nbytes
        for n in graphs["fp32"].graph.node
        if n.op_type == "MatMul" and n.input[1] in weights["fp32"]
    )
    nbits = [n for n in graphs["int8"].graph.node if n.op_type == "MatMulNBits"]
    assert nbits and not [
        n
        for n in graphs["int8"].graph.node
        if n.op_type == "MatMul" and n.input[1] in weights["int8"]
    ]
    attrs = [{a.name: a.i for a in n.attribute} for n in nbits]
    assert all(a["bits"] == 8 and a["block_size"] == 32 and a["accuracy_level"] == 4 for a in attrs)
    int8_matmul = sum(
        weights["int8"][i].nbytes for n in nbits for i in n.input[1:3] if i in weights["int8"]
    )
    assert int8_matmul < 0.3 * fp32_matmul


def test_a_wrong_logit_fails_validation():
    report, _ = _report("qwen3", "fp32")
    broken = json.loads(json.dumps(report))
    broken["text"]["prompts"][0]["max_abs"] = 0.5
    ok, failure = passes(broken)
    assert not ok and "prompt 'plain': max |logit diff| 0.5" in failure
    broken = json.loads(json.dumps(report))
    broken["greedy"]["equal"], broken["greedy"]["first_diff"] = False, 3
    assert "greedy tokens differ from transformers' at token 3" in passes(broken)[1]


def test_bad_requests_fail_in_one_line(tmp_path):
    from export.onnx.pipeline import export_onnx

    with pytest.raises(
        EdgeEtError, match="--quant 'q4' is not supported for ONNX; choose one of: fp32, fp16, int8"
    ):
        export_onnx(out=tmp_path / "b", reasoning=tmp_path, quant="q4")
    with pytest.raises(EdgeEtError, match="give --perception HF_DIR, --reasoning HF_DIR, or both"):
        export_onnx(out=tmp_path / "b")


def test_the_cli_exports_and_reports_files(tmp_path):
    import subprocess
    import sys

    hf = tiny_onnx(reasoning="qwen3", quant="fp32").ggufs["reasoning"].hf_dir
    cmd = [
        sys.executable,
        "-m",
        "edge_et.cli.main",
        "export",
        "onnx",
        "--reasoning",
        str(hf),
        "--quant",
        "int8",
        "--no-validate",
        "--out",
        str(tmp_path / "b"),
        "--json",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert [f["file"] for f in report["files"]] == ["reasoning/decoder.onnx"]
    assert report["files"][0]["bits_per_weight"] < 20 and not report["validated"]  # fp32 embedding
    assert Bundle.load(tmp_path / "b", verify_checksums=True).reasoning.backend == "onnx"
    bad = subprocess.run(
        cmd[:-4] + ["--quant", "q4", "--out", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0


def test_large_graphs_keep_their_weights_in_external_data(tmp_path, monkeypatch):
    """Past protobuf's 2 GiB limit weights go to `<graph>_data`; here the limit is lowered so a
    tiny model takes that path, and the runtime must give the single-file graph's logits."""
    import numpy as np

    from edge_et.backends.onnx.model import OnnxModel
    from export.onnx import text as onnx_text
    from export.onnx.pipeline import export_onnx

    single = tiny_onnx(reasoning="qwen3", quant="fp32")
    monkeypatch.setattr(onnx_text, "EXTERNAL_DATA_BYTES", 1000)
    out = tmp_path / "ext"
    export_onnx(out=out, reasoning=single.ggufs["reasoning"].hf_dir, quant="fp32", validate=False)
    bundle = Bundle.load(out, verify_checksums=True)
    assert "reasoning/decoder.onnx_data" in bundle.reasoning.extra_files
    ids = list(range(5, 40))
    logits = [
        OnnxModel(model_path=str(b / "reasoning" / "decoder.onnx"), n_ctx=256).score(ids=ids)
        for b in (single.bundle, out)
    ]
    assert np.array_equal(logits[0], logits[1])


def test_the_perception_stage_can_keep_its_own_precision(tmp_path):
    """--perception-quant fp32 beside an int8 reasoner: each stage's graphs and config at its own."""
    from export.onnx.pipeline import export_onnx

    vlm = tiny_onnx(perception="llava-ov-qwen3", quant="fp32").ggufs["perception"].hf_dir
    llm = tiny_onnx(reasoning="qwen3", quant="fp32").ggufs["reasoning"].hf_dir
    report = export_onnx(
        out=tmp_path / "b",
        perception=vlm,
        reasoning=llm,
        quant="int8",
        perception_quant="fp32",
        validate=False,
    )
    assert {(f.role, f.quant) for f in report.files} == {
        ("perception", "fp32"),
        ("reasoning", "int8"),
    }
    bits = {f.file: f.bits_per_weight for f in report.files}
    assert bits["perception/decoder.onnx"] > 30 and bits["reasoning/decoder.onnx"] < 20
    bundle = Bundle.load(tmp_path / "b", verify_checksums=True)
    assert (
        bundle.perception.onnx_config["quant"] == "fp32"
        and bundle.reasoning.onnx_config["quant"] == "int8"
    )
    with pytest.raises(EdgeEtError, match="not supported for ONNX"):
        export_onnx(out=tmp_path / "c", reasoning=llm, perception=vlm, perception_quant="q4")
