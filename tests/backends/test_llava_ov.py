"""LLaVA-OneVision (the paper's perception architecture) on llama.cpp, checked against transformers.

Three levels: the numpy preprocessing and packing against transformers' own functions on
arrays (every unpad branch and the anyres_max_9 shrink, no llama.cpp); tiny random checkpoints
(Qwen3 and Qwen2 language models) built, converted (text GGUF + our mmproj) and measured with
`export.parity.llava_ov`; and the runtime path through `LlamaCppModel.start(image=...)`.
Random weights give noise, so end-to-end tests assert properties and numbers, never text.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edge_et.errors import EdgeEtError
from edge_et.formats import llava_ov

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from export.archs import llava_ov as arch  # noqa: E402

TILE = 42  # tiny tiles: 3 x 3 patches of 14 px
# (height, width): square, wide (unpad rows), tall (unpad columns), larger than every grid
# (anyres_max_9 shrink), tiny, and one the grid fits exactly.
SIZES = [(42, 42), (60, 100), (130, 50), (200, 300), (20, 30), (84, 126), (300, 70)]


def _layout(tile: int = TILE, seed: int = 0, dim: int = 8) -> llava_ov.Layout:
    newline = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return llava_ov.Layout(
        tile=tile,
        side=tile // 14,
        max_tiles=9,
        newline=newline,
        pinpoints=tuple(map(tuple, arch.pinpoints(tile))),
    )


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)


# -- numpy side against transformers' functions -----------------------------------------------


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_views_are_the_hf_image_processor_pixels(height, width):
    from transformers import LlavaOnevisionImageProcessor

    rgb = _noise(height, width)
    processor = LlavaOnevisionImageProcessor(
        size={"height": TILE, "width": TILE},
        image_grid_pinpoints=arch.pinpoints(TILE),
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    want = processor(rgb, return_tensors="np")["pixel_values"][0]
    views = np.stack(llava_ov.make_views(rgb, _layout()))
    got = ((views / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2)  # what mtmd's normalisation gives
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-6


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_packing_is_pack_image_features(height, width):
    from transformers import LlavaOnevisionConfig, LlavaOnevisionModel

    layout = _layout()
    config = LlavaOnevisionConfig(
        vision_config={"model_type": "siglip_vision_model", "image_size": TILE, "patch_size": 14},
        image_grid_pinpoints=arch.pinpoints(TILE),
    )
    rows, cols = llava_ov.grid_shape(height, width, layout)
    views = np.random.default_rng(1).standard_normal((1 + rows * cols, 9, 8)).astype(np.float32)
    want, _ = LlavaOnevisionModel.pack_image_features(
        SimpleNamespace(config=config),
        [torch.from_numpy(views)],
        torch.tensor([[height, width]]),
        image_newline=torch.from_numpy(layout.newline),
        vision_aspect_ratio="anyres_max_9",
    )
    got = llava_ov.pack(views, height, width, layout)
    assert got.shape == tuple(want[0].shape)
    assert np.abs(got - want[0].numpy()).max() < 1e-5
    assert llava_ov.count_tokens(height, width, layout) == len(got)


def test_bilinear_resize_is_torch_interpolate():
    features = np.random.default_rng(2).standard_normal((17, 29, 5)).astype(np.float32)
    for out in [(7, 11), (16, 3), (17, 29), (20, 31)]:
        want = torch.nn.functional.interpolate(
            torch.from_numpy(features).permute(2, 0, 1)[None], list(out), mode="bilinear"
        )
        got = llava_ov.bilinear_resize(features, *out)
        assert np.abs(got - want[0].permute(1, 2, 0).numpy()).max() < 1e-5


@pytest.mark.parametrize(
    ("height", "width"),
    [(480, 640), (1080, 1920), (2000, 300), (384, 384), (100, 4000), (3024, 4032)],
)
def test_full_size_token_counts_follow_the_hf_processor_formula(height, width):
    from transformers import LlavaOnevisionProcessor as Processor

    layout = _layout(tile=384)
    grid = SimpleNamespace(image_grid_pinpoints=arch.pinpoints(384))
    fake = SimpleNamespace(
        image_processor=grid, num_image_tokens=729, vision_aspect_ratio="anyres_max_9"
    )
    fake._get_unpadded_features = lambda *a: Processor._get_unpadded_features(fake, *a)
    want = Processor._get_number_of_features(fake, height, width, 384, 384)
    assert llava_ov.count_tokens(height, width, layout) == want


def test_other_mmprojs_have_no_layout(tmp_path):
    from tests.helpers.ggufs import mmproj_gguf

    assert llava_ov.read_layout(mmproj_gguf(tmp_path / "qwen2vl.gguf")) is None


# -- export --------------------------------------------------------------------------------


def test_specs_pick_the_language_model(tmp_path):
    import json

    for text_type, name in [("qwen3", "llava-ov-qwen3"), ("qwen2", "llava-ov-qwen2")]:
        config = {"text_config": {"model_type": text_type}}
        (tmp_path / "config.json").write_text(json.dumps(config))
        assert arch.spec_for(tmp_path).name == name
    assert {s.name for s in arch.SPECS} == {"llava-ov-qwen2", "llava-ov-qwen3"}
    assert all(s.model_types == ("llava_onevision",) and s.is_vlm for s in arch.SPECS)


def test_prepare_names_the_lm_and_writes_the_papers_prompt(tmp_path):
    import json

    from edge_et.core.chat import render_user_turn

    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"text_config": {"model_type": "qwen3"}}))
    # A Qwen3 tokenizer's own template (thinking) must not reach the GGUF.
    (hf / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ qwen3 }}"}))
    (hf / "chat_template.jinja").write_text("{{ processor }}")
    (hf / "model.safetensors").write_bytes(b"")
    view = arch.prepare(hf, tmp_path / "work")
    config = json.loads((view / "config.json").read_text())
    assert config["text_config"]["architectures"] == ["Qwen3ForCausalLM"]
    template = json.loads((view / "tokenizer_config.json").read_text())["chat_template"]
    assert not (view / "chat_template.jinja").exists() and (view / "model.safetensors").is_symlink()
    # LLaVA's conv_qwen, which the paper's evaluation uses for its Qwen3 checkpoints.
    assert render_user_turn(template, "<image>\nDescribe.") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<image>\nDescribe.<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize("shape", ["llava-ov-qwen3-0.6b", "llava-ov-qwen3-1.7b"])
def test_full_size_shapes_have_the_paper_sizes(shape):
    from transformers import LlavaOnevisionForConditionalGeneration

    overrides = dict(arch.SPECS[1].shapes[shape])
    tokenizer = arch._tokenizer(overrides.pop("tokenizer_size"))
    config = arch.build_config("qwen3", tokenizer, **overrides)
    with torch.device("meta"):
        model = LlavaOnevisionForConditionalGeneration(config)
    vision = sum(p.numel() for p in model.model.vision_tower.parameters())
    text = sum(p.numel() for p in model.model.language_model.parameters())
    assert 395e6 < vision < 405e6  # so400m without its 27th layer and head
    assert {"llava-ov-qwen3-0.6b": 5.9e8, "llava-ov-qwen3-1.7b": 1.7e9}[shape] < text * 1.05
    assert (config.vision_config.image_size // config.vision_config.patch_size) ** 2 == 729


def test_mmproj_names_and_feature_layers():
    from export.gguf.llava_ov_mmproj import feature_layers, gguf_name

    assert (
        gguf_name("model.vision_tower.vision_model.encoder.layers.3.mlp.fc1.weight", 26)
        == "v.blk.3.ffn_up.weight"
    )
    assert (
        gguf_name("vision_tower.vision_model.encoder.layers.3.self_attn.out_proj.bias", 26)
        == "v.blk.3.attn_out.bias"
    )
    assert gguf_name("vision_tower.vision_model.encoder.layers.26.mlp.fc1.weight", 26) is None
    assert gguf_name("vision_tower.vision_model.post_layernorm.weight", 26) is None
    assert gguf_name("model.image_newline", 26) == "v.image_newline"
    assert feature_layers({"vision_config": {"num_hidden_layers": 26}}) == [26]
    assert feature_layers(
        {"vision_config": {"num_hidden_layers": 27}, "vision_feature_layer": -2}
    ) == [26]
    with pytest.raises(ValueError):
        feature_layers(
            {"vision_config": {"num_hidden_layers": 26}, "vision_feature_layer": [-1, 3]}
        )


# -- tiny checkpoints through llama.cpp ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny LLaVA-OV checkpoints and GGUFs: {lm: {"hf", "text", mmproj outtypes...}}."""
    from export.gguf import files as gguf
    from export.gguf.llava_ov_mmproj import write_mmproj

    root = tmp_path_factory.mktemp("llava_ov")
    built = {}
    for text_type, build in [("qwen3", arch.build_tiny_qwen3), ("qwen2", arch.build_tiny_qwen2)]:
        hf = build(root / text_type, seed=0)
        files = {
            "hf": hf,
            "text": gguf.convert(
                arch.prepare(hf, root / "work"),
                root / f"{text_type}.f32.gguf",
                outtype="f32",
                pre_tokenizer="qwen2",
            ),
        }
        for outtype in ("f32", "f16", "q8_0") if text_type == "qwen3" else ("f32",):
            files[outtype] = write_mmproj(hf, root / f"mmproj-{text_type}.{outtype}.gguf", outtype)
        built[text_type] = files
    return built


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("llava_ov_images")
    paths = {}
    for name, (height, width) in {"wide": (60, 100), "large": (200, 300)}.items():
        paths[name] = root / f"{name}.png"
        Image.fromarray(_noise(height, width, seed=3)).save(paths[name])
    return paths


@pytest.mark.slow
@pytest.mark.parametrize(
    ("lm", "outtype", "image"),
    [
        ("qwen3", "f32", "wide"),
        ("qwen3", "f32", "large"),
        ("qwen3", "f16", "wide"),
        ("qwen3", "q8_0", "wide"),
        ("qwen2", "f32", "wide"),
    ],
)
def test_packed_features_match_transformers(tiny, images, lm, outtype, image):
    from export.parity.llava_ov import image_embedding_parity

    files = tiny[lm]
    report = image_embedding_parity(files["hf"], files["text"], files[outtype], images[image])
    print(lm, outtype, image, report)
    assert report["n_tokens_gguf"] == report["n_tokens_ref"] == report["n_tokens_processor"]
    assert report["prompt_tokens_gguf"] == report["prompt_tokens_ref"]
    assert report["cosine"] > 0.999 and report["min_token_cosine"] > 0.99
    if outtype == "f32":
        assert report["first_token_match"]
        assert report["logits_max_abs_diff"] < 1e-2


@pytest.mark.slow
def test_image_goes_end_to_end_through_the_runtime(tiny, images):
    from edge_et.backends.llama_cpp.model import LlamaCppModel
    from edge_et.core.chat import render_user_turn
    from edge_et.core.decoding import Sampling
    from edge_et.core.images import load_image

    files, picture = tiny["qwen3"], load_image(images["wide"])
    model = LlamaCppModel(
        model_path=str(files["text"]), mmproj_path=str(files["f16"]), n_ctx=512, n_threads=2
    )
    try:
        assert model.chat_template == arch.CHAT_TEMPLATE
        prompt = render_user_turn(model.chat_template, model.media_marker + "\nDescribe it.")
        text_only = sum(len(model.tokenize(text=part)) for part in prompt.split(model.media_marker))
        first = model.start(prompt=prompt, image=picture)
        layout = model.llava_ov_images.layout
        n_image = llava_ov.count_tokens(picture.height, picture.width, layout)
        assert first.prompt_tokens == text_only + n_image == model.tokens_in_context
        assert first.image_encode_s > 0 and not first.image_cached
        tokens = []
        for _ in range(4):
            tokens.append(model.sample(sampling=Sampling()))
            model.append(tokens=tokens[-1:])
        assert len(tokens) == 4 and model.tokens_in_context == first.prompt_tokens + 4
        logits = []
        again = model.start(prompt=prompt, image=picture)  # same picture: embeddings reused
        assert again.image_cached and model.image_encodes == 1
        keep = lambda x: logits.append(x.copy())  # noqa: E731
        assert model.sample(sampling=Sampling(), edit=keep) == tokens[0]
        model.start(prompt=prompt, image=load_image(images["large"]))
        model.sample(sampling=Sampling(), edit=keep)
        # The image reaches the LLM: another picture moves the logits far more than the parity
        # error between llama.cpp and transformers (< 1e-3).
        assert np.abs(logits[0] - logits[1]).max() > 1e-2
    finally:
        model.close()


@pytest.mark.slow
def test_real_tile_size_through_mtmd(tmp_path):
    """384 px tiles of 27 x 27 patches at SigLIP so400m's width (1 layer keeps it quick)."""
    from PIL import Image

    from export.gguf import files as gguf
    from export.gguf.llava_ov_mmproj import write_mmproj
    from export.parity.llava_ov import image_embedding_parity

    hf = arch.build_tiny_qwen3(
        tmp_path / "hf",
        vision_layers=1,
        vision_hidden=1152,
        vision_intermediate=4304,
        vision_heads=16,
        image_size=384,
    )
    text = gguf.convert(
        arch.prepare(hf, tmp_path), tmp_path / "text.gguf", outtype="f32", pre_tokenizer="qwen2"
    )
    mmproj = write_mmproj(hf, tmp_path / "mmproj.f16.gguf", "f16")
    Image.fromarray(_noise(300, 400, seed=4)).save(tmp_path / "photo.png")
    report = image_embedding_parity(hf, text, mmproj, tmp_path / "photo.png")
    print(report)
    assert report["grid"] == [1, 2]
    # 27 x 54 features, unpadded to 27 x 36 (4:3 inside 1:2), plus a newline per row
    assert report["n_tokens_gguf"] == report["n_tokens_ref"] == 729 + 27 * (36 + 1)
    assert report["cosine"] > 0.999 and report["first_token_match"]


@pytest.mark.slow
def test_too_long_for_the_context_is_a_user_error(tiny, images):
    from edge_et.backends.llama_cpp.model import LlamaCppModel
    from edge_et.core.images import load_image

    files = tiny["qwen2"]
    model = LlamaCppModel(
        model_path=str(files["text"]), mmproj_path=str(files["f32"]), n_ctx=256, n_threads=2
    )
    try:
        with pytest.raises(EdgeEtError, match="context holds 256"):  # 93 image + 200 text tokens
            model.start(prompt=model.media_marker + " hi" * 200, image=load_image(images["large"]))
        assert model.image_encodes == 0  # refused before the encode
    finally:
        model.close()


# -- batched view encoding and the image path's settings ------------------------------------


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.slow
def test_libmtmd_batches_one_llava_view_at_a_time(tiny, images):
    """Why views are encoded one by one: this libmtmd's batch path takes a second chunk only
    for clip graphs that declare batch support (InternVL, Gemma 4, DeepSeek-OCR), never for
    the "mlp" (LLaVA) projector, whatever batch_max_tokens allows. A batch of one is what
    encode_chunk computes. If a llama.cpp update batches LLaVA views, this test says so."""
    import ctypes
    from contextlib import ExitStack

    import llama_cpp.mtmd_cpp as mtmd

    from edge_et.backends.llama_cpp.model import LlamaCppModel
    from edge_et.core.images import load_image

    files = tiny["qwen3"]
    model = LlamaCppModel(
        model_path=str(files["text"]), mmproj_path=str(files["f16"]), n_ctx=512, n_threads=2
    )
    params = mtmd.mtmd_context_params_default()
    params.print_timings, params.n_threads, params.batch_max_tokens = False, 2, 1 << 20
    roomy = mtmd.mtmd_init_from_file(str(files["f16"]).encode(), model.llama.model, params)
    images_ov = model.llava_ov_images
    try:
        views = llava_ov.make_views(load_image(images["large"]).rgb, images_ov.layout)
        one_by_one = images_ov._encode_view(views[0])
        with ExitStack() as scope:
            chunks = [images_ov._image_chunk(view, scope) for view in views[:2]]
            batch = mtmd.mtmd_batch_init(roomy)
            scope.callback(mtmd.mtmd_batch_free, batch)
            assert mtmd.mtmd_batch_add_chunk(batch, chunks[0]) == 0
            assert mtmd.mtmd_batch_add_chunk(batch, chunks[1]) == 2, (
                "libmtmd now batches LLaVA views: revisit docs/latency.md, Batched view encoding"
            )
            assert mtmd.mtmd_batch_encode(batch) == 0
            pointer = mtmd.mtmd_batch_get_output_embd(batch, chunks[0])
            batched = np.ctypeslib.as_array(
                ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=one_by_one.shape
            ).copy()
        assert _cosine(batched, one_by_one) >= 0.99999
    finally:
        mtmd.mtmd_free(roomy)
        model.close()


@pytest.mark.slow
def test_tuned_image_settings_keep_the_embeddings_and_logits(tiny, images):
    """Every setting image tuning may choose computes the same picture: embeddings (cosine)
    and the first token's logits after the image prefill."""
    from edge_et.backends.llama_cpp.loading import PrefillSettings
    from edge_et.backends.llama_cpp.model import LlamaCppModel
    from edge_et.core.decoding import Sampling
    from edge_et.core.images import load_image

    files, picture = tiny["qwen3"], load_image(images["large"])
    results = []
    for settings in [
        PrefillSettings(),
        PrefillSettings(
            n_batch=2048, n_ubatch=64, flash_attn=True, vision_flash="off", vision_threads=1
        ),
    ]:
        model = LlamaCppModel(
            model_path=str(files["text"]),
            mmproj_path=str(files["f32"]),
            n_ctx=512,
            n_threads=2,
            prefill=settings,
        )
        try:
            embeddings = model.llava_ov_images.embed(picture)
            logits = []
            model.start(prompt=model.media_marker + "\nDescribe it.", image=picture)
            model.sample(sampling=Sampling(), edit=lambda x, seen=logits: seen.append(x.copy()))
            results.append((embeddings, logits[0]))
        finally:
            model.close()
    (embeddings, logits), (tuned_embeddings, tuned_logits) = results
    assert len(embeddings) > 64  # more image tokens than one ubatch of the tuned setting
    assert _cosine(tuned_embeddings, embeddings) >= 0.99999
    assert np.abs(tuned_logits - logits).max() < 1e-3
