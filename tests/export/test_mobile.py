"""`edge-et export mobile` on the tiny ONNX bundle: the package's .ort graphs load and answer in
onnxruntime here, parity with the source bundle is recorded and within its bounds, the ops
config and mobile.json (files, sizes, RSS, providers) exist, bad input is one line."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("optimum.exporters.onnx")

from edge_et.bundle.manifest import Bundle  # noqa: E402
from edge_et.errors import EdgeEtError  # noqa: E402
from edge_et.runtime.pipeline import Pipeline, RunOptions  # noqa: E402
from export.mobile.usability import parse_checker_log  # noqa: E402
from tests.cli.test_cli_errors import assert_one_line_error, edge_et  # noqa: E402

QUESTION = "What is left of the square?\nA. circle\nB. star\nC. tree\nD. car"
_STEP = {"temperature": 0.0, "repeat_penalty": 4.0}
GREEDY = {
    "extract": {**_STEP, "max_tokens": 24},
    "think": {**_STEP, "budget": 16, "answer_budget": 8},
}


@pytest.fixture(scope="module")
def source() -> Path:
    from export.tiny.onnx import tiny_onnx

    # The fixture of tests/runtime/test_onnx_pipeline.py: built once, cached.
    return tiny_onnx(
        perception="llava-ov-qwen3", reasoning="qwen3", quant="fp32", validate=False
    ).bundle


@pytest.fixture(scope="module")
def package(source, tmp_path_factory) -> Path:
    from export.mobile.package import export_mobile

    out = tmp_path_factory.mktemp("mobile") / "pkg"
    export_mobile(out=out, bundle=source, target="ios", quant="int4")
    return out


@pytest.mark.slow
def test_the_package_holds_ort_graphs_the_ops_config_and_its_manifest(package):
    graphs = sorted(p.relative_to(package).as_posix() for p in package.rglob("*.ort"))
    assert graphs == [
        "perception/decoder.ort",
        "perception/embed.ort",
        "perception/vision.ort",
        "reasoning/decoder.ort",
    ]
    assert not list(package.rglob("*.onnx")) and not list(package.parent.glob(".pkg-mobile-*"))
    ops = (package / "required_operators.config").read_text()
    assert "com.microsoft;1;GatherBlockQuantized,MatMulNBits" in ops and "/tmp" not in ops
    data = json.loads((package / "mobile.json").read_text())
    assert data["reasoning_embedding"] == "int8"
    embedding = data["stages"]["reasoning"]["embedding"]
    assert embedding["op"] == "GatherBlockQuantized" and "one copy" in embedding["tied_output"]
    assert data["execution_providers"] == [
        "CoreMLExecutionProvider",
        "XnnpackExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert data["onnxruntime"]["onnxruntime_version"] and data["reasoning_quant"] == "int4"
    assert data["stages"]["perception"]["vision"]["inputs"]["pixel_values"][0] == 1
    vision_use = data["stages"]["perception"]["usability"]["vision.ort"]
    assert {"nnapi", "coreml_mlprogram", "xnnpack"} <= set(vision_use)
    assert data["prompts"]["extraction_prefix"] and data["decoding"]["think"]["budget"] == 4096
    for role in ("perception", "reasoning"):
        assert data["measured"]["parity"][role]["passes"], data["measured"]["parity"][role]
        assert data["measured"]["peak_rss_bytes"][role]["peak_rss_bytes"] > 10 * 2**20
    files = {row["file"]: row for row in data["files"]}
    assert set(graphs) <= set(files) and data["sizes"]["graphs_bytes"] == sum(
        files[g]["size_bytes"] for g in graphs
    )
    parity = json.loads((package / "parity.json").read_text())
    assert (
        parity["perception"]["greedy"]["equal"]
        and parity["perception"]["vision"]["cosine"] > 0.9999
    )
    Bundle.load(package, verify_checksums=True)  # every file's sha256 recorded and right


def _answers(bundle_dir: Path, image: Path, mode: str) -> dict:
    bundle = Bundle.load(bundle_dir)
    bundle.decoding = GREEDY
    with Pipeline(bundle) as pipeline:
        result = pipeline.run(image, QUESTION, RunOptions(mode=mode, seed=0))
    return {"extraction": result.extraction, "reasoning": result.reasoning}


@pytest.mark.slow
def test_the_package_answers_and_its_extraction_is_the_sources(package, source, sample_image):
    # The perception stage keeps its precision: the same extraction word for word.
    assert _answers(package, sample_image, "extract") == _answers(source, sample_image, "extract")
    full = _answers(package, sample_image, "extract-think")
    assert full["extraction"] and full["reasoning"]
    done = edge_et(
        "run",
        "--bundle",
        str(package),
        "--image",
        str(sample_image),
        "--question",
        QUESTION,
        "--mode",
        "extract",
        "--device",
        "xnnpack",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "XnnpackExecutionProvider" in line]
    assert len(warnings) == 1 and "running on the CPU" in warnings[0]


@pytest.mark.slow
def test_bad_input_is_one_line(source, tiny_bundle, tmp_path):
    from export.mobile.graphs import quantize_reasoner
    from export.onnx.text import quantize_blockwise

    assert_one_line_error(
        edge_et("export", "mobile", "--bundle", str(tiny_bundle), "--out", str(tmp_path / "a")),
        "is not one of edge-et's micro models",
    )
    assert_one_line_error(
        edge_et(
            "export",
            "mobile",
            "--bundle",
            str(source),
            "--quant",
            "int3",
            "--out",
            str(tmp_path / "b"),
        ),
        "--quant 'int3'",
    )
    int8 = quantize_blockwise(source / "reasoning" / "decoder.onnx", tmp_path / "int8.onnx", bits=8)
    with pytest.raises(EdgeEtError, match="already 8-bit; a int4 package needs the float weights"):
        quantize_reasoner(int8, tmp_path / "x.onnx", "int4")
    kept = quantize_reasoner(int8, tmp_path / "y.onnx", "int8")
    assert "already int8" in kept["decoder"] and kept["embedding"]["bits"] == 8  # still float there
    assert_one_line_error(
        edge_et(
            "export",
            "mobile",
            "--bundle",
            str(source),
            "--embedding",
            "int2",
            "--out",
            str(tmp_path / "c"),
        ),
        "--embedding 'int2': choose one of int8, int4, float",
    )
    assert not any((tmp_path / n).exists() for n in "abc")


def _logits(graph: Path, ids: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    feeds = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "position_ids": np.arange(ids.shape[1])[None],
    }
    for i in session.get_inputs():
        if i.name.startswith("past_key_values"):  # no cache yet: [batch, heads, 0, head_dim]
            feeds[i.name] = np.zeros([1, i.shape[1], 0, i.shape[3]], np.float32)
    return session.run(
        ["logits"], {k: v for k, v in feeds.items() if k in {i.name for i in session.get_inputs()}}
    )[0][0]


@pytest.mark.slow
@pytest.mark.parametrize("quant, table", [("int4", "int8"), ("int8", "int8"), ("int4", "int4")])
def test_the_token_embedding_is_quantized_once_and_keeps_parity(source, tmp_path, quant, table):
    # The tiny Qwen3 ties its output matrix to the embedding: one quantized copy serves both.
    # (int4 at 4 bits is only checked to run: it keeps this model's rms, not its argmax, bound.)
    import onnx

    from export.mobile.graphs import quantize_reasoner
    from export.parity.gguf_text import compare_logits, summarize
    from export.parity.mobile import failures

    float_graph = source / "reasoning" / "decoder.onnx"
    done = quantize_reasoner(float_graph, tmp_path / "q.onnx", quant, table)
    model = onnx.load(str(tmp_path / "q.onnx"))
    vocab, hidden = done["embedding"]["shape"]
    gather = [n for n in model.graph.node if n.op_type == "GatherBlockQuantized"]
    head = [n for n in model.graph.node if n.op_type == "MatMulNBits" and n.output[0] == "logits"]
    assert len(gather) == 1 and len(head) == 1 and gather[0].input[0] == head[0].input[1]
    assert (
        {a.name: a.i for a in head[0].attribute}["bits"]
        == done["embedding"]["bits"]
        == int(table[3:])
    )
    floats = [
        t.name
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) == vocab * hidden
    ]
    assert not floats, f"a float vocab x hidden table is left: {floats}"
    ids = np.random.default_rng(0).integers(0, vocab, (1, 48))
    text = summarize([compare_logits(_logits(float_graph, ids), _logits(tmp_path / "q.onnx", ids))])
    broken = failures({"text": text, "greedy": {"equal": True}}, quant)
    assert not (broken if table == "int8" else [b for b in broken if "rms" in b]), text
    kept = quantize_reasoner(float_graph, tmp_path / "f.onnx", quant, "float")
    assert kept["embedding"]["kept_float"] == "--embedding float"
    assert not [
        n
        for n in onnx.load(str(tmp_path / "f.onnx")).graph.node
        if n.op_type == "GatherBlockQuantized"
    ]


def test_the_usability_log_is_read_per_provider():
    log = """Checking NNAPI
6 partitions with a total of 88/93 nodes can be handled by the NNAPI EP.
\tUnsupported ops: ai.onnx:Erf,ai.onnx:LayerNormalization
Model should perform well with NNAPI as is: NO
Checking CoreML MLProgram
1 partitions with a total of 93/93 nodes can be handled by the CoreML MLProgram EP.
Model should perform well with CoreML MLProgram as is: YES
"""
    assert parse_checker_log(log) == {
        "nnapi": {
            "partitions": 6,
            "nodes": 88,
            "of_nodes": 93,
            "performs_well": False,
            "unsupported_ops": ["ai.onnx:Erf", "ai.onnx:LayerNormalization"],
        },
        "coreml_mlprogram": {"partitions": 1, "nodes": 93, "of_nodes": 93, "performs_well": True},
    }


@pytest.mark.slow
def test_checkpoints_are_exported_to_float_onnx_first(tmp_path):
    from export.mobile.package import export_mobile
    from export.tiny.bundle import tiny_ggufs

    hf = tiny_ggufs("qwen3").hf_dir
    data = export_mobile(out=tmp_path / "pkg", reasoning=hf, quant="int8", target="android")
    assert data["reasoning_quant"] == "int8" and data["measured"]["parity"]["reasoning"]["passes"]
    assert data["execution_providers"] == ["XnnpackExecutionProvider", "CPUExecutionProvider"]
    assert [p.name for p in (tmp_path / "pkg" / "reasoning").glob("*.ort")] == ["decoder.ort"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left


def test_a_graph_over_the_ort_format_limit_is_refused_before_converting(tmp_path, monkeypatch):
    # A 1.5B reasoner at int8 with its float embedding kept 2.49 GiB in one graph; onnxruntime
    # failed only at the end of a minutes-long conversion. The limit is lowered so that a few
    # bytes stand for it.
    from edge_et.errors import ExportError
    from export.mobile import ort_format

    (tmp_path / "reasoning").mkdir()
    (tmp_path / "reasoning" / "decoder.onnx").write_bytes(b"x" * 10)
    (tmp_path / "reasoning" / "decoder.onnx_data").write_bytes(b"x" * 100)
    monkeypatch.setattr(ort_format, "ORT_FORMAT_MAX_BYTES", 64)
    with pytest.raises(
        ExportError, match=r"reasoning/decoder.onnx is 0.00 GiB .*--quant int4"
    ) as raised:
        ort_format.convert_folder(tmp_path)
    assert "\n" not in str(raised.value)
    monkeypatch.setattr(ort_format, "ORT_FORMAT_MAX_BYTES", 110)
    ort_format.check_fits_ort_format(tmp_path)  # 110 bytes: exactly at the limit still fits
