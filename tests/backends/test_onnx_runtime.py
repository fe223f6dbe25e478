"""The ONNX runtime's own pieces, without any export: sampling, token bytes, execution providers,
bundle validation of ONNX stages, and the memory estimate."""

import json
from pathlib import Path

import numpy as np
import pytest

from edge_et.backends.onnx.sampling import REPEAT_WINDOW, Sampler
from edge_et.bundle.manifest import Bundle
from edge_et.core.decoding import Sampling
from edge_et.errors import EdgeEtError

# -- sampling ------------------------------------------------------------------------------


def test_greedy_takes_the_first_maximum_as_llama_cpp_does():
    logits = np.array([0.1, 2.0, 2.0, -1.0], dtype=np.float32)
    assert Sampler(Sampling())(logits) == 1


def test_repeat_penalty_counts_the_last_draws_as_llama_cpp_does():
    logits = np.array([3.0, 2.9, -0.5, -0.6], dtype=np.float32)
    sampler = Sampler(Sampling(repeat_penalty=1.1))
    assert [sampler(logits) for _ in range(3)] == [0, 1, 0]  # 3/1.1 < 2.9, then 2.9/1.1 < 3/1.1
    # Only the last REPEAT_WINDOW draws count: once 0 has left the window it wins again.
    sampler = Sampler(Sampling(repeat_penalty=1.1))
    sampler(logits)
    only_3 = np.array([-9.0, -9.0, -9.0, 5.0], dtype=np.float32)
    for _ in range(REPEAT_WINDOW):
        sampler(only_3)
    assert sampler(logits) == 0


def test_top_k_and_top_p_restrict_the_draw_and_the_seed_repeats_it():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    top1 = Sampling(temperature=1.0, top_k=1, seed=3)
    assert {Sampler(top1)(logits) for _ in range(20)} == {0}
    nucleus = Sampling(temperature=1.0, top_p=0.7, seed=3)
    sampler = Sampler(nucleus)
    draws = [sampler(logits) for _ in range(200)]
    assert set(draws) == {0, 1}  # 0.5 + 0.3 reaches 0.7; 2 and 3 are cut
    again = Sampler(nucleus)
    assert [again(logits) for _ in range(200)] == draws


# -- tokens --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory) -> Path:
    from export.archs.qwen3 import CHAT_TEMPLATE, THINK_TOKENS, qwen_tokenizer

    out = tmp_path_factory.mktemp("tok")
    qwen_tokenizer(CHAT_TEMPLATE, plain=THINK_TOKENS).save_pretrained(out)
    return out


def test_token_bytes_rebuild_text_split_inside_characters(tokenizer_json):
    from transformers import AutoTokenizer

    from edge_et.backends.onnx.tokenizer import DeviceTokenizer

    ours = DeviceTokenizer(tokenizer_json / "tokenizer.json")
    theirs = AutoTokenizer.from_pretrained(tokenizer_json)
    text = "naïve café — 東京 🚀 <|im_end|> </think>\n\n  spaces\tand\r\nlines"
    ids = ours.encode(text)
    assert ids == theirs(text, add_special_tokens=False)["input_ids"]
    assert b"".join(ours.piece(t) for t in ids).decode("utf-8") == text
    assert ours.piece(ours.token_id("<|im_end|>")) == b"<|im_end|>"


# -- execution providers ---------------------------------------------------------------------


def test_missing_provider_falls_back_to_cpu_with_one_warning(capsys):
    from edge_et.backends.onnx import session as onnx_session

    assert onnx_session.providers_for("cpu") == ["CPUExecutionProvider"]
    onnx_session._warned.discard("coreml")
    for _ in range(2):
        assert onnx_session.providers_for("coreml") == ["CPUExecutionProvider"]
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert lines == [
        "edge-et: warning: this onnxruntime has no CoreMLExecutionProvider; running on the CPU"
    ]
    with pytest.raises(EdgeEtError, match="unknown device 'tpu'; choose one of: cpu, cuda"):
        onnx_session.providers_for("tpu")


# -- bundle validation -----------------------------------------------------------------------

CONFIG = {
    "format": "edge-et.onnx/1",
    "arch": "qwen3",
    "tokenizer": "tokenizer.json",
    "n_layer": 2,
    "n_head_kv": 2,
    "head_dim": 64,
    "hidden_size": 256,
    "vocab_size": 1600,
    "max_positions": 4096,
}


def _onnx_bundle(
    root: Path, *, config=CONFIG, files=("reasoning/tokenizer.json",), model=b"\x08\x07fake"
) -> Path:
    stage = root / "reasoning"
    stage.mkdir(parents=True, exist_ok=True)
    (stage / "decoder.onnx").write_bytes(model)
    (stage / "tokenizer.json").write_text("{}")
    (stage / "onnx_config.json").write_text(json.dumps(config))
    manifest = {
        "format": "edge-et.bundle/1",
        "name": "t",
        "reasoning": {
            "backend": "onnx",
            "model": "reasoning/decoder.onnx",
            "extra_files": list(files),
            "thinking": True,
        },
    }
    (root / "bundle.json").write_text(json.dumps(manifest))
    return root


def test_an_onnx_stage_validates_and_lists_its_files(tmp_path):
    bundle = Bundle.load(_onnx_bundle(tmp_path))
    stage = bundle.reasoning
    assert stage.backend == "onnx" and stage.arch == "qwen3" and stage.onnx_config["n_layer"] == 2
    assert stage.files() == [
        "reasoning/decoder.onnx",
        "reasoning/onnx_config.json",
        "reasoning/tokenizer.json",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(model=b"GGUF"), "is not an ONNX model"),
        (dict(files=()), "'reasoning.extra_files' must list 'reasoning/tokenizer.json'"),
        (dict(files=("reasoning/tokenizer.json", "../x.bin")), "escapes the bundle folder"),
        (dict(config={**CONFIG, "format": "other"}), "is not an edge-et ONNX stage config"),
    ],
)
def test_broken_onnx_stages_fail_in_one_line(tmp_path, change, message):
    with pytest.raises(EdgeEtError, match=message):
        Bundle.load(_onnx_bundle(tmp_path, **change))


def test_missing_stage_config_is_named(tmp_path):
    (_onnx_bundle(tmp_path) / "reasoning" / "onnx_config.json").unlink()
    with pytest.raises(
        EdgeEtError, match="reasoning ONNX config file 'reasoning/onnx_config.json' is missing"
    ):
        Bundle.load(tmp_path)


def test_the_footprint_counts_files_and_a_float32_cache(tmp_path):
    from edge_et.backends.onnx.footprint import onnx_footprint

    stage = Bundle.load(_onnx_bundle(tmp_path)).reasoning
    footprint = onnx_footprint(stage, 1024)
    assert footprint.weights_bytes == len(b"\x08\x07fake")
    # keys + values, 2 layers x 2 heads x 64, float32, doubled while a step's outputs are made.
    assert footprint.kv_bytes == 2 * 2 * 2 * 2 * 64 * 1024 * 4
    assert footprint.total_bytes > footprint.kv_bytes


# -- image preprocessing ---------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(60, 90), (200, 31), (17, 17), (500, 380)])
def test_llava_ov_pixel_values_match_the_hf_image_processor(tmp_path, height, width):
    from transformers import LlavaOnevisionImageProcessor

    from edge_et.backends.onnx.vision import llava_ov_pixel_values
    from edge_et.formats import llava_ov
    from export.archs.llava_ov import pinpoints, save_image_processor

    tile = 42
    save_image_processor(tmp_path, tile)
    processor = LlavaOnevisionImageProcessor.from_pretrained(tmp_path)
    rgb = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    theirs = processor(rgb, return_tensors="np")["pixel_values"][0]
    layout = llava_ov.Layout(
        tile=tile,
        side=3,
        max_tiles=9,
        newline=np.zeros(1, np.float32),
        pinpoints=tuple(tuple(p) for p in pinpoints(tile)),
    )
    ours = llava_ov_pixel_values(rgb, layout, mean=processor.image_mean, std=processor.image_std)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() <= 1e-6


def test_the_largest_picture_is_sized_by_the_largest_pinpoint_grid():
    from edge_et.backends.onnx.footprint import image_bytes
    from export.archs.llava_ov import pinpoints

    vision = {"tile": 384, "side": 27, "pinpoints": pinpoints(384), "max_tiles": 9}
    one_grid = {**vision, "pinpoints": [[384, 384]]}
    # 37 views (base + 6 x 6) of 384² float32 pixels at least, far more than a 1 x 1 grid.
    assert image_bytes(vision, 1024) > 37 * 3 * 384 * 384 * 4
    assert image_bytes(one_grid, 1024) < image_bytes(vision, 1024) / 2
