"""Qwen2-VL on the ONNX path, piece by piece against transformers: the numpy image processor,
the vision tower's rotary table, M-RoPE prompt positions (`get_rope_index`), the decoder
session's 3-D positions, the memory estimate, and the CLI on the tiny bundle."""

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from edge_et.backends.onnx import mrope as onnx_mrope
from edge_et.backends.onnx import qwen2vl as onnx_qwen2vl
from edge_et.errors import EdgeEtError
from edge_et.formats import qwen2vl as qwen2vl_format

# -- image preprocessing -----------------------------------------------------------------


@pytest.fixture(scope="module")
def processor():
    from export.archs.qwen2vl import image_processor

    return image_processor(14)


def _section(processor) -> dict:
    from export.onnx.qwen2vl import processor_section

    return processor_section(processor.to_dict())


@pytest.mark.parametrize(
    ("height", "width"), [(100, 151), (140, 112), (17, 300), (600, 500), (28, 28), (5, 7)]
)
def test_pixel_values_and_grid_match_the_hf_image_processor(processor, height, width):
    rgb = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8)
    theirs = processor(rgb, return_tensors="np")
    ours, grid = onnx_qwen2vl.pixel_values(rgb, _section(processor))
    assert list(grid) == theirs["image_grid_thw"][0].tolist()
    assert ours.shape == theirs["pixel_values"].shape and ours.dtype == np.float32
    assert np.abs(ours - theirs["pixel_values"]).max() <= 1e-6


def test_an_extreme_aspect_ratio_is_refused_in_one_line(processor):
    with pytest.raises(EdgeEtError, match="aspect ratios up to 200"):
        onnx_qwen2vl.pixel_values(np.zeros((2, 500, 3), np.uint8), _section(processor))


@pytest.mark.parametrize("grid", [(1, 8, 10), (1, 2, 22), (1, 34, 28)])
def test_rotary_table_matches_rot_pos_emb(grid):
    import torch
    from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel

    config = Qwen2VLVisionConfig(depth=1, embed_dim=64, num_heads=4, hidden_size=32)
    tower = Qwen2VisionTransformerPretrainedModel(config)
    freqs = tower.rot_pos_emb(torch.tensor([grid])).numpy()
    cos, sin = qwen2vl_format.rotary_table(grid, head_dim=16, merge=2)
    emb = np.concatenate([freqs, freqs], axis=1)
    assert cos.shape == emb.shape and np.abs(cos - np.cos(emb)).max() <= 1e-6
    assert np.abs(sin - np.sin(emb)).max() <= 1e-6


@pytest.mark.parametrize("grid", [(1, 8, 10), (1, 16, 8), (1, 34, 28), (1, 2, 2)])
def test_qwen25vl_windows_match_get_window_index(grid):
    import torch
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel,
    )

    from edge_et.formats import qwen2vl as onnx_qwen25vl

    config = Qwen2_5_VLVisionConfig(
        depth=1,
        hidden_size=32,
        num_heads=2,
        intermediate_size=32,
        out_hidden_size=32,
        window_size=112,
        fullatt_block_indexes=[0],
    )
    index, cu_seqlens = Qwen2_5_VisionTransformerPretrainedModel(config).get_window_index(
        torch.tensor([grid])
    )
    order, sizes = onnx_qwen25vl.window_order(
        (grid[0], grid[1] // 2, grid[2] // 2), window_tokens=4
    )
    assert np.array_equal(order, index.numpy())
    assert [0, *np.cumsum(sizes) * 4] == sorted(set(cu_seqlens))  # HF keeps empty windows
    mask = onnx_qwen25vl.window_mask(sizes, 4)
    assert mask.shape == (4 * len(order),) * 2
    assert (mask == 0).sum() == sum((4 * n) ** 2 for n in sizes)


# -- M-RoPE positions -----------------------------------------------------------------------

IMAGE, START, END = 7, 5, 6


def _hf_rope_index(segments):
    """transformers' get_rope_index on token ids laid out as `segments` (merge 2)."""
    import torch
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel

    ids, grids = [], []
    for segment in segments:
        if isinstance(segment, tuple):
            ids += [START] + [IMAGE] * int(np.prod(segment)) + [END]
            grids.append([segment[0], 2 * segment[1], 2 * segment[2]])
        else:
            ids += [1] * segment
    config = SimpleNamespace(
        vision_config=SimpleNamespace(spatial_merge_size=2),
        image_token_id=IMAGE,
        video_token_id=99,
        vision_start_token_id=START,
    )
    positions, delta = Qwen2VLModel.get_rope_index(
        SimpleNamespace(config=config), torch.tensor([ids]), torch.tensor(grids) if grids else None
    )
    return positions[:, 0].numpy(), int(delta.reshape(-1)[0]) if grids else 0


def _ours(segments):
    # Our segments count the boundary tokens as text: one before and after each image.
    laid_out = []
    for segment in segments:
        laid_out += [1, segment, 1] if isinstance(segment, tuple) else [segment]
    return onnx_mrope.prompt_positions(laid_out)


@pytest.mark.parametrize(
    "segments",
    [[9], [4, (1, 2, 3), 6], [(1, 4, 4), 3], [2, (1, 1, 5), 1], [3, (1, 3, 2), 2, (1, 2, 2), 4]],
)
def test_prompt_positions_match_get_rope_index(segments):
    theirs, delta = _hf_rope_index(segments)
    ours = _ours(segments)
    assert np.array_equal(ours, theirs)
    assert int(ours.max()) + 1 - ours.shape[1] == delta


class _FakeDecoder:
    """An ORT-like session that records its feeds; `rank` is position_ids' rank."""

    def __init__(self, rank: int):
        shape = [3, "b", "s"] if rank == 3 else ["b", "s"]
        past = SimpleNamespace(
            name="past_key_values.0.key", shape=["b", 2, "p", 8], type="tensor(float)"
        )
        self._inputs = [
            SimpleNamespace(name="input_ids", shape=["b", "s"]),
            SimpleNamespace(name="position_ids", shape=shape),
            past,
        ]
        self.feeds = []

    def get_inputs(self):
        return self._inputs

    def run(self, names, feeds):
        self.feeds.append(feeds)
        n = feeds["input_ids"].shape[1]
        past = feeds["past_key_values.0.key"]
        return [np.zeros((1, n, 4), np.float32), np.zeros((1, 2, past.shape[2] + n, 8), np.float32)]


def test_the_session_feeds_3d_positions_and_continues_after_the_rope_delta():
    from edge_et.backends.onnx.session import DecoderSession

    session = _FakeDecoder(rank=3)
    decoder = DecoderSession(session)
    decoder.reset()
    prompt = onnx_mrope.prompt_positions([2, (1, 2, 3), 1])  # 9 tokens, positions up to 5
    decoder.forward(ids=np.arange(9), positions=prompt)
    decoder.forward(ids=np.array([3]))
    first, step = (f["position_ids"] for f in session.feeds)
    assert first.shape == (3, 1, 9) and np.array_equal(first[:, 0], prompt)
    assert np.array_equal(step, np.full((3, 1, 1), 6))  # max + 1, not the cache index 9
    decoder.reset()
    decoder.forward(ids=np.arange(4))
    assert np.array_equal(session.feeds[-1]["position_ids"][:, 0], np.tile(np.arange(4), (3, 1)))


def test_a_1d_decoder_keeps_its_positions_and_refuses_3d_ones():
    from edge_et.backends.onnx.session import DecoderSession

    session = _FakeDecoder(rank=2)
    decoder = DecoderSession(session)
    decoder.reset()
    decoder.forward(ids=np.arange(3))
    decoder.forward(ids=np.array([1]))
    assert [f["position_ids"].tolist() for f in session.feeds] == [[[0, 1, 2]], [[3]]]
    with pytest.raises(ValueError, match="M-RoPE"):
        decoder.forward(ids=np.arange(2), positions=np.zeros((3, 2), np.int64))


# -- memory estimate ------------------------------------------------------------------------


def test_the_estimate_covers_full_attention_over_the_largest_picture(processor):
    """Qwen2.5-VL's window mask (patches² floats) comes on top."""
    from edge_et.backends.onnx.footprint import image_bytes, vision_shape

    vision = {
        "kind": "qwen2_vl",
        **_section(processor),
        "vision_hidden": 64,
        "vision_heads": 4,
        "vision_intermediate": 128,
    }
    patches = processor.max_pixels // 14**2
    assert vision_shape({"vision": vision}).max_tokens == patches // 4 == 256
    assert image_bytes(vision, 128) > 3 * 4 * patches**2 * 4  # 3 score copies, 4 heads
    larger = {**vision, "max_pixels": 4 * vision["max_pixels"]}
    assert image_bytes(larger, 128) > 10 * image_bytes(vision, 128)  # quadratic in patches
    windowed = {**vision, "kind": "qwen2_5_vl", "window_size": 112}
    assert image_bytes(windowed, 128) - image_bytes(vision, 128) == patches**2 * 4


# -- the tiny bundle through the CLI ----------------------------------------------------------


@pytest.fixture(scope="module")
def bundle():
    pytest.importorskip("optimum.exporters.onnx")
    from export.tiny.onnx import tiny_onnx

    return tiny_onnx(perception="qwen2vl", quant="fp32").bundle  # validated: test_onnx_export


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_info_plan_and_run_take_the_qwen2vl_bundle(bundle, sample_image):
    info = json.loads(_cli("info", str(bundle), "--json", "--verify").stdout)
    stage = info["stages"]["perception"]
    assert stage["model"]["architecture"] == "qwen2vl"
    assert stage["mmproj"]["projector"] == "qwen2_vl"
    plan = json.loads(_cli("plan", "--bundle", str(bundle), "--json").stdout)
    assert plan["stages"]["perception"]["mmproj_bytes"] > 2 * 4 * 1024**2 * 4
    done = _cli(
        "run",
        "--bundle",
        str(bundle),
        "--image",
        str(sample_image),
        "--question",
        "What is left of the square?",
        "--mode",
        "extract",
        "--max-tokens",
        "8",
        "--seed",
        "0",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    extract = json.loads(done.stdout)["stages"]["extract"]
    # 128 x 128 resizes to 140 x 140: 10 x 10 patches, 25 merged tokens, plus the text.
    assert extract["image_encode_s"] > 0 and extract["prompt_tokens"] > 25


@pytest.mark.slow
def test_prefill_chunks_may_split_the_image(bundle, sample_image, monkeypatch):
    """Positions are sliced with the embeddings: a chunk boundary inside the image's tokens
    gives the same logits as one call."""
    from edge_et.backends.onnx import model as onnx_backend
    from edge_et.core.chat import render_user_turn
    from edge_et.core.images import load_image

    model = onnx_backend.OnnxModel(
        model_path=str(bundle / "perception" / "decoder.onnx"),
        mmproj_path=str(bundle / "perception" / "vision.onnx"),
        n_ctx=512,
        n_threads=1,
    )
    prompt = render_user_turn(model.chat_template, model.media_marker + "\nDescribe.")
    image = load_image(sample_image)
    logits = []
    for chunk in (256, 7):
        monkeypatch.setattr(onnx_backend, "PREFILL_CHUNK", chunk)
        model.start(prompt=prompt, image=image)
        model.append(tokens=[model.sample(sampling=onnx_backend.Sampling())])
        model.sample(sampling=onnx_backend.Sampling())
        logits.append(model._logits)
    assert np.allclose(logits[0], logits[1], atol=1e-5)


def test_max_pixels_overrides_size_as_in_the_hf_processor(tmp_path):
    """A user lowers max_pixels (and forgets `size`): the processor obeys max_pixels."""
    from transformers import Qwen2VLImageProcessor

    from export.archs.qwen2vl import image_processor
    from export.onnx.qwen2vl import processor_section

    image_processor(14).save_pretrained(tmp_path)
    path = tmp_path / "preprocessor_config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "max_pixels": 28 * 28 * 4}))
    rgb = np.zeros((300, 200, 3), np.uint8)
    theirs = Qwen2VLImageProcessor.from_pretrained(tmp_path)(rgb, return_tensors="np")
    _, grid = onnx_qwen2vl.pixel_values(rgb, processor_section(json.loads(path.read_text())))
    assert list(grid) == theirs["image_grid_thw"][0].tolist() == [1, 4, 2]
