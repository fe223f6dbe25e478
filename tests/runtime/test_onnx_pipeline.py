"""ONNX bundles in the whole pipeline: the same answers as the GGUF bundle of the same weights in
every mode (greedy), and the CLI commands that take a bundle (`run`, `info`, `plan`)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optimum.exporters.onnx")
pytest.importorskip("llama_cpp")

from edge_et.bundle.manifest import Bundle  # noqa: E402
from edge_et.runtime.pipeline import MODES, Pipeline, RunOptions  # noqa: E402
from tests.helpers.onnx_twins import gguf_twin  # noqa: E402

pytestmark = pytest.mark.slow
PERCEPTION, REASONING = "llava-ov-qwen3", "qwen3"
QUESTION = "What is left of the square?\nA. circle\nB. star\nC. tree\nD. car"
# Every stage greedy and short: the two backends must then agree token for token. The repeat
# penalty (llama.cpp's sampler on one side, edge-et's numpy one on the other) keeps the random
# models from repeating one token, so the texts compared are varied.
_STEP = {"temperature": 0.0, "repeat_penalty": 4.0}
GREEDY = {
    "extract": {**_STEP, "max_tokens": 24},
    "caption": {**_STEP, "max_tokens": 24},
    "direct": {**_STEP, "max_tokens": 12},
    "think": {**_STEP, "budget": 24, "answer_budget": 12},
    "reason": {**_STEP, "max_tokens": 24},
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """{"onnx": fp32 ONNX bundle, "gguf": f16 GGUF bundle} of the same tiny weights."""
    from export.tiny.onnx import tiny_onnx

    # Not validated here: test_onnx_export validates each architecture's export.
    tiny = tiny_onnx(perception=PERCEPTION, reasoning=REASONING, quant="fp32", validate=False)
    return {"onnx": tiny.bundle, "gguf": gguf_twin(tiny, tmp_path_factory.mktemp("gguf"))}


def _answers(bundle_dir: Path, mode: str, image: Path) -> dict:
    bundle = Bundle.load(bundle_dir)
    bundle.decoding = GREEDY
    with Pipeline(bundle) as pipeline:
        result = pipeline.run(image, QUESTION, RunOptions(mode=mode, seed=0))
    return {
        "extraction": result.extraction,
        "reasoning": result.reasoning,
        "answer": result.answer,
        "tokens": {
            name: stage.generated_tokens + stage.forced_tokens
            for name, stage in result.stages.items()
        },
    }


@pytest.mark.parametrize("mode", MODES)
def test_onnx_and_gguf_bundles_give_the_same_answers(bundles, sample_image, mode):
    onnx = _answers(bundles["onnx"], mode, sample_image)
    gguf = _answers(bundles["gguf"], mode, sample_image)
    assert onnx == gguf
    assert all(onnx["tokens"].values())  # every stage generated something
    assert len(set(onnx["extraction"] + (onnx["reasoning"] or ""))) > 5  # and not one token over


# Pictures other than the sample, by architecture. On the sample, tiny Qwen2-VL's 6th token is
# a near-tie (top two logits 3.4e-5 apart after the repeat penalty) that the f16 GGUF twin flips
# (its logits differ by ~6e-4); its image embeddings agree (cosine 0.9999999, llama.cpp's mtmd
# resizes as Pillow does). This picture's sides are multiples of 28: nothing resizes it.
TWIN_PICTURES = {"qwen2vl": (112, 140)}
# Export options a twin needs: libmtmd lays an Idefics3 image out its own way, so the ONNX
# bundle must use that layout to answer like the GGUF one (edge_et/formats/idefics3.py).
TWIN_OPTIONS = {"idefics3": {"image_layout": "mtmd"}}


def _twin_picture(arch: str, sample_image: Path, out: Path) -> Path:
    """The sample picture, or for TWIN_PICTURES architectures the sample centred on a white
    canvas of that (height, width)."""
    from PIL import Image

    if arch not in TWIN_PICTURES:
        return sample_image
    height, width = TWIN_PICTURES[arch]
    picture = Image.new("RGB", (width, height), "white")
    sample = Image.open(sample_image)
    picture.paste(sample, ((width - sample.width) // 2, (height - sample.height) // 2))
    picture.save(out / "picture.png")
    return out / "picture.png"


@pytest.mark.parametrize(
    "arch", ["qwen2", "llama", "gemma3_text", "llava-ov-qwen2", "qwen2vl", "qwen25vl", "idefics3"]
)
def test_other_architectures_agree_with_their_gguf_twins(arch, tmp_path, sample_image):
    from export import archs
    from export.tiny.onnx import tiny_onnx

    role = archs.get(arch).role
    sample_image = _twin_picture(arch, sample_image, tmp_path)
    # Built and validated by test_onnx_export (the mtmd Idefics3 one by test_onnx_idefics3).
    tiny = tiny_onnx(**{role: arch}, quant="fp32", **TWIN_OPTIONS.get(arch, {}))
    outputs = []
    for bundle_dir in (tiny.bundle, gguf_twin(tiny, tmp_path)):
        bundle = Bundle.load(bundle_dir)
        bundle.decoding = GREEDY
        with Pipeline(bundle) as pipeline:
            if role == "reasoning":
                result = pipeline.reason_over(
                    "A red circle is left of a blue square.", QUESTION, RunOptions(seed=0)
                )
                outputs.append(result.reasoning)
            else:
                outputs.append(
                    pipeline.run(
                        sample_image, QUESTION, RunOptions(mode="extract", seed=0)
                    ).extraction
                )
    assert outputs[0] == outputs[1] and len(set(outputs[0])) > 5


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_runs_an_onnx_bundle_and_reports_its_stages(bundles, sample_image):
    done = _cli(
        "run",
        "--bundle",
        str(bundles["onnx"]),
        "--image",
        str(sample_image),
        "--question",
        QUESTION,
        "--think-budget",
        "16",
        "--answer-budget",
        "8",
        "--seed",
        "0",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["stages"]["extract"]["image_encode_s"] > 0
    assert (
        result["stages"]["think"]["generated_tokens"] + result["stages"]["think"]["forced_tokens"]
        <= 24
    )


def test_info_and_plan_read_onnx_stages(bundles):
    info = json.loads(_cli("info", str(bundles["onnx"]), "--json", "--verify").stdout)
    assert "CPUExecutionProvider" in info["onnx_providers"]
    model = info["stages"]["perception"]["model"]
    assert model["architecture"] == PERCEPTION and model["size_bytes"] > 0
    assert info["stages"]["perception"]["mmproj"]["projector"] == "llava_onevision"
    plan = json.loads(_cli("plan", "--bundle", str(bundles["onnx"]), "--json").stdout)
    assert plan["decision"] == "co-resident"
    assert plan["stages"]["reasoning"]["kv_bytes"] > 0
    assert plan["stages"]["perception"]["mmproj_bytes"] > 0


def test_run_device_picks_a_provider_with_cpu_fallback(bundles, sample_image):
    """An NPU this onnxruntime lacks: one warning line, the run still answers on the CPU."""
    done = _cli(
        "run",
        "--bundle",
        str(bundles["onnx"]),
        "--image",
        str(sample_image),
        "--question",
        QUESTION,
        "--mode",
        "extract",
        "--device",
        "qnn",
        "--seed",
        "0",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert (
        json.loads(done.stdout)["stages"]["extract"]["image_encode_s"] > 0
    )  # it ran, image and all
    warnings = [line for line in done.stderr.splitlines() if "QNNExecutionProvider" in line]
    assert len(warnings) == 1 and "running on the CPU" in warnings[0]


def test_onnx_providers_are_refused_for_llama_cpp_stages(bundles, sample_image):
    for command in (
        ("plan", "--bundle", str(bundles["gguf"])),
        (
            "run",
            "--bundle",
            str(bundles["gguf"]),
            "--image",
            str(sample_image),
            "--question",
            QUESTION,
        ),
    ):
        done = _cli(*command, "--device", "coreml")
        assert done.returncode == 2 and "ONNX Runtime provider" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    done = _cli("plan", "--bundle", str(bundles["onnx"]), "--device", "tpu")
    assert (
        done.returncode == 2
        and "choose one of: cpu, cuda, coreml, qnn, nnapi, dml, xnnpack" in done.stderr
    )
