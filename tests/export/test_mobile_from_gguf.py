"""`edge-et export mobile --bundle` on a GGUF bundle (export/mobile/from_gguf.py): the committed
micro perception model (rebuilt from its GGUFs) and a tiny GGUF reasoner (read back by
transformers) become a package whose .ort graphs load and answer. (A GGUF perception that is not
edge-et's micro model: tests/export/test_mobile.py, bad input.)"""

import json
from pathlib import Path

import pytest

pytest.importorskip("optimum.exporters.onnx")

from edge_et.bundle.manifest import Bundle  # noqa: E402
from edge_et.runtime.pipeline import Pipeline, RunOptions  # noqa: E402
from tests.cli.test_cli_errors import edge_et  # noqa: E402

MICRO_DIR = Path(__file__).resolve().parents[2] / "models" / "micro" / "extract"
QUESTION = "What shape is red?\nA. circle\nB. square\nC. star\nD. triangle"
GREEDY = {
    "extract": {"temperature": 0.0, "max_tokens": 48},
    "think": {"temperature": 0.0, "repeat_penalty": 4.0, "budget": 8, "answer_budget": 8},
}


@pytest.fixture(scope="module")
def gguf_bundle(tmp_path_factory) -> Path:
    """The demo's layout with a tiny reasoner: micro F16 + mmproj, tiny random Qwen3 F16."""
    from export.bundle import Stage, write_bundle
    from export.tiny.bundle import tiny_ggufs

    out = tmp_path_factory.mktemp("gguf") / "bundle"
    out.mkdir()
    write_bundle(
        out,
        name="micro-and-tiny",
        perception=Stage(
            MICRO_DIR / "perception.F16.gguf", mmproj=MICRO_DIR / "mmproj.F16.gguf", n_ctx=2048
        ),
        reasoning=Stage(tiny_ggufs("qwen3").model, n_ctx=1024, thinking=True, random_weights=True),
    )
    return out


@pytest.mark.slow
def test_a_gguf_bundle_of_the_micro_model_and_a_tiny_reasoner_becomes_a_package_that_answers(
    gguf_bundle, sample_image, tmp_path
):
    package = tmp_path / "pkg"
    done = edge_et(
        "export",
        "mobile",
        "--bundle",
        str(gguf_bundle),
        "--out",
        str(package),
        "--quant",
        "int8",
        "--json",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    assert sorted(p.relative_to(package).as_posix() for p in package.rglob("*.ort")) == [
        "perception/decoder.ort",
        "perception/embed.ort",
        "perception/vision.ort",
        "reasoning/decoder.ort",
    ]
    for role in ("perception", "reasoning"):
        assert data["measured"]["parity"][role]["passes"], data["measured"]["parity"][role]
    bundle = Bundle.load(package, verify_checksums=True)
    bundle.decoding = GREEDY
    with Pipeline(bundle) as pipeline:
        result = pipeline.run(sample_image, QUESTION, RunOptions(mode="extract-think", seed=0))
    assert result.extraction.strip() and result.reasoning is not None
    # The same weights through llama.cpp: the package cuts the picture in libmtmd's layout, the
    # one the micro model was trained in, so the extraction is word for word the GGUF bundle's.
    # (In transformers' layout the demo's sample came out "3 shapes ... GOLD" instead of
    # "2 shapes ... EDGE".)
    source = Bundle.load(gguf_bundle)
    source.decoding = GREEDY
    with Pipeline(source) as pipeline:
        twin = pipeline.run(sample_image, QUESTION, RunOptions(mode="extract", seed=0))
    assert result.extraction == twin.extraction
