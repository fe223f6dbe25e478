"""Idefics3 / SmolVLM on the ONNX path: the numpy image processor against transformers', the two
image layouts (transformers' "hf", libmtmd's "mtmd"), exports validated against transformers
(tiled too), the memory estimate, and the trained micro model against its published GGUF.

The fp32, int8 and fp16 exports of the tiny checkpoint in the default layout are checked with
every architecture in test_onnx_export; its GGUF twin (mtmd layout) in test_onnx_pipeline.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge_et.backends.onnx import idefics3 as onnx_idefics3
from edge_et.formats import idefics3

ROOT = Path(__file__).resolve().parents[2]
MICRO_HF = ROOT / "models" / "store" / "micro" / "extract" / "hf"  # export.micro.train's output
MICRO_GGUF = ROOT / "models" / "micro" / "extract"  # the published GGUF bundle of those weights


def _processor(tile: int, longest: int, split: bool = True):
    """An Idefics3 processor (image processor + a tokenizer with SmolVLM's specials)."""
    from transformers import Idefics3ImageProcessor, Idefics3Processor

    from export.archs.idefics3 import CHAT_TEMPLATE, IMAGE_SPECIALS
    from export.archs.llama import smollm2_tokenizer

    image = Idefics3ImageProcessor(
        size={"longest_edge": longest},
        max_image_size={"longest_edge": tile},
        do_image_splitting=split,
        image_mean=[0.5, 0.4, 0.3],
        image_std=[0.2, 0.3, 0.25],
    )
    tokenizer = smollm2_tokenizer(CHAT_TEMPLATE, special=IMAGE_SPECIALS, eos="<end_of_utterance>")
    return Idefics3Processor(image_processor=image, tokenizer=tokenizer, image_seq_len=4)


def _tokens(tokenizer, side: int = 6) -> idefics3.SpanTokens:
    ids = tokenizer.convert_tokens_to_ids
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    return idefics3.SpanTokens(
        fake=ids("<fake_token_around_image>"),
        global_img=ids("<global-img>"),
        image=ids("<image>"),
        newline=tuple(encode("\n")),
        blank=tuple(encode("\n\n")),
        tiles=tuple(
            tuple(ids(f"<row_{r}_col_{c}>") for c in range(1, side + 1)) for r in range(1, side + 1)
        ),
    )


SIZES = [(60, 90), (200, 31), (17, 17), (96, 96), (33, 95), (100, 60), (5, 300)]


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("split", [True, False])
def test_hf_layout_matches_the_transformers_processor(height, width, split):
    processor = _processor(tile=32, longest=96, split=split)
    layout = idefics3.Layout(tile=32, longest_edge=96, tokens=4, split=split)
    rgb = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8)
    out = processor(text=["Look: <image> now"], images=[[rgb]], return_tensors="np")
    image = processor.image_processor
    ours = onnx_idefics3.pixel_values(rgb, layout, mean=image.image_mean, std=image.image_std)
    theirs = out["pixel_values"][0]
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() <= 1e-6
    tok = processor.tokenizer
    span = idefics3.span_ids(*idefics3.grid_shape(height, width, layout), layout, _tokens(tok))
    ids = (
        tok.encode("Look: ", add_special_tokens=False)
        + span
        + tok.encode(" now", add_special_tokens=False)
    )
    assert ids == out["input_ids"][0].tolist()
    assert idefics3.count_views(height, width, layout) == len(theirs)
    assert len(theirs) <= idefics3.max_views(layout)


def test_mtmd_layout_is_the_one_the_micro_models_were_trained_in():
    """A picture of one tile: a 1 x 1 grid plus the global view, the very span that
    export.micro.model.Layout gives the training sequences."""
    from export.archs.idefics3 import CHAT_TEMPLATE, IMAGE_SPECIALS
    from export.archs.llama import smollm2_tokenizer
    from export.micro.model import MICRO, Layout, image_tokens_per_view

    tokenizer = smollm2_tokenizer(CHAT_TEMPLATE, special=IMAGE_SPECIALS, eos="<end_of_utterance>")
    tile, per_view = MICRO["image_size"], image_tokens_per_view(MICRO)
    layout = idefics3.Layout(tile=tile, longest_edge=tile, tokens=per_view, mode="mtmd")
    span = idefics3.span_ids(*idefics3.grid_shape(tile, tile, layout), layout, _tokens(tokenizer))
    assert span == Layout(tokenizer, MICRO).image_span
    rgb = np.random.default_rng(0).integers(0, 256, (tile, tile, 3), np.uint8)
    views = idefics3.make_views(rgb, layout)
    assert len(views) == 2 and all(np.array_equal(v, rgb) for v in views)  # no resize at all
    hf = idefics3.Layout(tile=tile, longest_edge=tile, tokens=per_view)
    assert idefics3.grid_shape(tile, tile, hf) == (0, 0) and len(idefics3.make_views(rgb, hf)) == 1


def test_the_layouts_tile_some_pictures_differently():
    # 100 x 60 at tile 64: libmtmd rounds 60 up to one row; transformers derives the height
    # from the rounded width (128 / (100 / 60) = 76.8 -> 128), two rows.
    hf = idefics3.Layout(tile=64, longest_edge=100, tokens=4)
    mtmd = idefics3.Layout(tile=64, longest_edge=100, tokens=4, mode="mtmd")
    assert idefics3.grid_shape(60, 100, hf) == (2, 2)
    assert idefics3.grid_shape(60, 100, mtmd) == (1, 2)


def test_the_estimate_grows_with_the_tiles():
    from edge_et.backends.onnx.footprint import image_bytes, vision_shape

    vision = {
        "kind": "idefics3",
        "tile": 512,
        "longest_edge": 2048,
        "tokens_per_view": 64,
        "patches_per_view": 1024,
        "vision_hidden": 768,
        "vision_heads": 12,
        "vision_intermediate": 3072,
        "layout": "hf",
        "span_tokens": {
            "fake": 1,
            "global": 2,
            "image": 3,
            "newline": [4],
            "blank": [5],
            "tiles": [[6] * 4] * 4,
        },
    }
    # 4 x 4 tiles + the global view, 64 tokens each, 2 delimiters per tile, 3 rows' "\n",
    # "\n\n" and the global view's 3.
    assert vision_shape({"vision": vision}).max_tokens == 17 * 64 + 16 * 2 + 3 + 1 + 3
    one_tile = {**vision, "longest_edge": 512}
    assert vision_shape({"vision": one_tile}).max_tokens == 64 + 3
    # 17 views of 512² float32 pixels at least; a single-tile checkpoint far less.
    assert image_bytes(vision, 576) > 17 * 3 * 512 * 512 * 4
    assert image_bytes(one_tile, 576) < image_bytes(vision, 576) / 4


# -- exports (slow) ----------------------------------------------------------------------


def _tiny_hf() -> Path:
    from export.tiny.bundle import tiny_ggufs

    return tiny_ggufs("idefics3").hf_dir


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _parity(bundle: Path) -> dict:
    return json.loads((bundle / "parity.json").read_text())["perception"]


@pytest.mark.slow
def test_mtmd_layout_export_matches_transformers_with_sequential_positions():
    from export.tiny.onnx import tiny_onnx

    report = _parity(tiny_onnx(perception="idefics3", quant="fp32", image_layout="mtmd").bundle)
    assert report["ok"], report["first_failure"]
    vision = report["vision"]
    assert vision["layout"] == "mtmd" and vision["grid"] == [1, 1]  # one tile: still a grid
    assert vision["pixels"]["max_abs"] <= 1e-6 and vision["greedy"]["equal"]
    assert vision["embeddings"]["cosine"] > 0.99999


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["hf", "mtmd"])
def test_a_tiled_picture_matches_transformers(tmp_path, layout):
    """The tiny checkpoint with a longest edge of three tiles: the parity picture becomes a
    grid, and every tile's tokens, pixels and embeddings must still match."""
    from export.onnx.pipeline import export_onnx

    hf = tmp_path / "hf"
    shutil.copytree(_tiny_hf(), hf)
    config = json.loads((hf / "preprocessor_config.json").read_text())
    config["size"] = {"longest_edge": 3 * config["max_image_size"]["longest_edge"]}
    (hf / "preprocessor_config.json").write_text(json.dumps(config))
    export_onnx(out=tmp_path / "b", perception=hf, quant="fp32", image_layout=layout)
    report = _parity(tmp_path / "b")
    assert report["ok"], report["first_failure"]
    vision = report["vision"]
    assert vision["grid"] == [2, 3] and vision["prompt_ids"]["equal"]
    assert vision["pixels"]["max_abs"] <= 1e-6 and vision["greedy"]["equal"]


@pytest.mark.slow
def test_a_smolvlm_checkpoint_exports_the_same_way(tmp_path):
    """model_type "smolvlm" (SmolVLM2's classes in transformers): the tiny weights relabelled."""
    from export.onnx.pipeline import export_onnx

    hf = tmp_path / "hf"
    shutil.copytree(_tiny_hf(), hf)
    config = json.loads((hf / "config.json").read_text())
    config.update(model_type="smolvlm", architectures=["SmolVLMForConditionalGeneration"])
    config["vision_config"]["model_type"] = "smolvlm_vision"
    (hf / "config.json").write_text(json.dumps(config))
    export_onnx(out=tmp_path / "b", perception=hf, quant="fp32")
    report = _parity(tmp_path / "b")
    assert report["ok"], report["first_failure"]
    assert report["vision"]["greedy"]["equal"] and report["vision"]["layout"] == "hf"


@pytest.mark.slow
def test_the_layout_option_is_checked_in_one_line(tmp_path):
    from edge_et.errors import EdgeEtError
    from export.onnx.pipeline import export_onnx
    from export.tiny.bundle import tiny_ggufs

    with pytest.raises(
        EdgeEtError, match="--image-layout 'odd' is not known; choose one of: hf, mtmd"
    ):
        export_onnx(out=tmp_path / "b", perception=_tiny_hf(), image_layout="odd")
    llava = tiny_ggufs("llava-ov-qwen2").hf_dir
    with pytest.raises(EdgeEtError, match="applies to idefics3/smolvlm checkpoints, not llava"):
        export_onnx(out=tmp_path / "b", perception=llava, image_layout="mtmd")
    done = _cli(
        "export",
        "onnx",
        "--perception",
        str(_tiny_hf()),
        "--image-layout",
        "odd",
        "--out",
        str(tmp_path / "c"),
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr


@pytest.mark.slow
def test_info_and_plan_read_an_idefics3_bundle():
    from export.tiny.onnx import tiny_onnx

    bundle = tiny_onnx(perception="idefics3", quant="fp32").bundle
    info = json.loads(_cli("info", str(bundle), "--json", "--verify").stdout)
    mmproj = info["stages"]["perception"]["mmproj"]
    assert mmproj["projector"] == "idefics3" and mmproj["image_layout"] == "hf"
    plan = json.loads(_cli("plan", "--bundle", str(bundle), "--json").stdout)
    stage = plan["stages"]["perception"]
    assert stage["mmproj_bytes"] > 0 and stage["image_tokens"] == 4 + 3  # one view, no grid


@pytest.mark.slow
def test_the_trained_micro_model_answers_like_its_gguf(tmp_path, sample_image):
    """The real trained micro Idefics3 (export.micro.train) exported to ONNX fp32 gives the
    published GGUF bundle's extraction of the sample (its layout picked from its recipe). The
    training run's checkpoint when it is there, else the one rebuilt from the published GGUFs
    (export.micro.from_gguf; cached), so a clean clone runs this too."""
    from export.micro.from_gguf import micro_checkpoint

    hf = MICRO_HF if (MICRO_HF / "tiny_recipe.json").is_file() else micro_checkpoint(MICRO_GGUF)
    out = tmp_path / "micro-onnx"
    done = _cli(
        "export", "onnx", "--perception", str(hf), "--quant", "fp32", "--out", str(out), "--json"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((out / "perception" / "onnx_config.json").read_text())
    assert config["vision"]["layout"] == "mtmd"
    answers = {}
    for name, bundle in (("onnx", out), ("gguf", MICRO_GGUF)):
        started = time.perf_counter()
        run = _cli(
            "run",
            "--bundle",
            str(bundle),
            "--image",
            str(sample_image),
            "--mode",
            "extract",
            "--question",
            "What is in the image?",
            "--seed",
            "0",
            "--json",
        )
        assert run.returncode == 0, run.stderr[-2000:]
        answers[name] = json.loads(run.stdout)
        answers[name]["wall_s"] = time.perf_counter() - started
    print(
        json.dumps(
            {
                k: {"extraction": v["extraction"], "wall_s": round(v["wall_s"], 2)}
                for k, v in answers.items()
            },
            indent=2,
        )
    )
    assert answers["onnx"]["extraction"] == answers["gguf"]["extraction"]
    assert len(answers["onnx"]["extraction"]) > 20


def test_a_sliver_still_gets_one_tile_a_side():
    layout = idefics3.Layout(tile=32, longest_edge=96, tokens=4)
    rgb = np.zeros((1, 300, 3), np.uint8)
    for mode in ("hf", "mtmd"):
        views = idefics3.make_views(rgb, idefics3.Layout(**{**layout.__dict__, "mode": mode}))
        assert len(views) == 4 and all(v.shape == (32, 32, 3) for v in views)  # 1 x 3 + global
