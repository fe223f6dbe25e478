"""Every registered architecture, end to end on its tiny random checkpoint.

Parametrized over `archs.names()`, so a newly registered architecture is covered without
touching this file (as optimum's test_all_models_tested does): its tiny model builds, converts with the real llama.cpp
converter (f16, plus the mmproj for VLMs), loads in llama.cpp and generates; a VLM also takes
an image through libmtmd. Full-size shapes are checked for size only, on the meta device.

The converted files are cached by recipe hash (`export.tiny.bundle.tiny_ggufs`): cold, the
file takes about a minute and a half on 2 cores; warm, a few seconds. Random weights give
noise, so the tests assert properties (token counts, architectures), never text.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llama_cpp")

from edge_et.core.chat import render_user_turn  # noqa: E402
from edge_et.core.decoding import Sampling  # noqa: E402
from edge_et.errors import EdgeEtError  # noqa: E402
from edge_et.formats.gguf import read_gguf_info  # noqa: E402
from export import archs  # noqa: E402
from export.archs.base import TinyBuilder, count_parameters
from export.gguf import files as gguf
from export.tiny import checkpoints as tiny
from export.tiny.bundle import tiny_ggufs  # noqa: E402

pytestmark = pytest.mark.slow

REQUIRED = {
    "qwen3",
    "qwen2",
    "llama",
    "gemma3_text",
    "qwen2vl",
    "qwen25vl",
    "qwen3vl",
    "idefics3",
    "gemma3",
}
ARCHS = archs.names()  # read at collection: the parametrization IS the registry
VLMS = archs.names(role="perception")
SHAPES = [(a, s) for a in ARCHS for s in sorted(archs.get(a).shapes)]

# Published parameter counts (model cards). Qwen's cards give the non-embedding count to
# three digits, more precise than their rounded totals ("1.7B" is 1.72B); the others give
# totals. Each shape must match within 1%.
PUBLISHED = {
    "qwen3-0.6b": (0.44e9, "non-embedding"),
    "qwen3-1.7b": (1.4e9, "non-embedding"),
    "qwen3-4b": (3.6e9, "non-embedding"),
    "qwen2.5-0.5b": (0.36e9, "non-embedding"),
    "qwen2.5-1.5b": (1.31e9, "non-embedding"),
    "smollm2-135m": (135e6, "total"),
    "smollm2-360m": (360e6, "total"),
    "gemma3-270m": (270e6, "total"),
    "smolvlm-256m": (256e6, "total"),
}
# How a checkpoint saved by transformers 4.57 differs from the hub's, per `prepare`.
SAVED_BY_TRANSFORMERS = {
    "qwen2vl": lambda config: config.pop("architectures"),
    "qwen25vl": lambda config: config.pop("architectures"),
    "idefics3": lambda config: config["text_config"].pop("architectures"),
}
K_QUANTS = {12, 13, 14}  # ggml Q4_K, Q5_K, Q6_K


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A small picture with structure (quadrants), decoded as the runtime decodes images."""
    from PIL import Image

    from edge_et.core.images import load_image

    picture = Image.new("RGB", (96, 64), (240, 240, 240))
    picture.paste((200, 30, 30), (0, 0, 48, 32))
    picture.paste((30, 30, 200), (48, 32, 96, 64))
    path = tmp_path_factory.mktemp("image") / "quadrants.png"
    picture.save(path)
    return load_image(path)


def test_registry_holds_every_required_architecture():
    assert REQUIRED <= set(ARCHS), f"missing: {sorted(REQUIRED - set(ARCHS))}"
    for name in ARCHS:
        spec = archs.get(name)
        assert spec.name == name and spec.role in archs.ROLES and spec.model_types
        assert callable(spec.build_tiny) and spec.gguf_arch, name
    assert set(VLMS) | set(archs.names(role="reasoning")) == set(ARCHS)


def test_unknown_names_and_roles_list_the_valid_ones():
    with pytest.raises(EdgeEtError, match="supported: .*qwen3") as err:
        archs.get("qwen9")
    assert "\n" not in str(err.value)
    with pytest.raises(EdgeEtError, match="perception"):
        archs.names(role="vision")
    with pytest.raises(EdgeEtError, match="its shapes: .*qwen3-4b"):
        tiny.build("qwen3", Path("unused"), shape="qwen3-9b")


@pytest.mark.parametrize("name", ARCHS)
def test_for_checkpoint_finds_the_spec_by_model_type(name, tmp_path):
    assert archs.for_checkpoint(tiny_ggufs(name).hf_dir).name == name
    for model_type in archs.get(name).model_types:  # aliases, e.g. SmolVLM2's "smolvlm"
        outer, _, text = model_type.partition("/")
        config = {"model_type": outer, **({"text_config": {"model_type": text}} if text else {})}
        (tmp_path / "config.json").write_text(json.dumps(config))
        assert model_type in archs.for_checkpoint(tmp_path).model_types


def test_source_files_follow_imports_between_architecture_modules():
    # A tiny build's cache key covers the modules it is made of, and only those.
    def files(arch):
        return {p.parent.name + "/" + p.name for p in archs.source_files(arch)}

    assert {"archs/qwen3.py", "archs/base.py", "export/tokenizer.py"} <= files("qwen3")
    assert "archs/qwen2vl.py" not in files("qwen3")
    assert {"archs/qwen25vl.py", "archs/qwen2vl.py", "archs/qwen3.py"} <= files("qwen25vl")
    assert tiny.recipe_hash({"arch": "qwen3"}) != tiny.recipe_hash({"arch": "qwen2"})


def test_for_checkpoint_refuses_what_it_cannot_handle(tmp_path):
    with pytest.raises(EdgeEtError, match="no config.json"):
        archs.for_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "mamba"}')
    with pytest.raises(
        EdgeEtError, match="'mamba' is not supported; supported model types: .*qwen3"
    ):
        archs.for_checkpoint(tmp_path)


def _generate(model, n: int) -> list[int]:
    tokens = []
    for _ in range(n):  # EOS ignored: random weights may emit it anywhere
        tokens.append(model.sample(sampling=Sampling()))
        model.append(tokens=tokens[-1:])
    return tokens


def _assert_the_turn_end_stops_generation(model) -> None:
    """The token that closes an assistant turn in the chat template is end-of-generation."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    turn = (
        ImmutableSandboxedEnvironment()
        .from_string(model.chat_template)
        .render(
            messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "XYZ"}],
            bos_token=model.bos_text,
            eos_token=model.eos_text,
        )
    )
    closing = model.tokenize(text=turn.split("XYZ", 1)[1])
    assert closing and model.is_end(token=closing[0]), turn


@pytest.mark.parametrize("name", ARCHS)
def test_tiny_model_converts_loads_and_generates(name, image):
    from edge_et.backends.llama_cpp.model import LlamaCppModel

    spec = archs.get(name)
    files = tiny_ggufs(name)
    assert gguf.architecture(files.model) == spec.gguf_arch
    assert (files.mmproj is not None) == spec.is_vlm
    mmproj = str(files.mmproj) if files.mmproj else None
    model = LlamaCppModel(model_path=str(files.model), n_ctx=1024, mmproj_path=mmproj, n_threads=2)
    try:
        template = model.chat_template
        assert template and spec.thinking == ("<think>" in template)
        request = "Describe the image."

        def render(content):
            return render_user_turn(
                template, content, bos_text=model.bos_text, eos_text=model.eos_text
            )

        _assert_the_turn_end_stops_generation(model)
        text_only = model.start(prompt=render(request))
        assert len(_generate(model, 4)) == 4
        if spec.is_vlm:
            assert gguf.architecture(files.mmproj) == "clip"
            with_image = model.start(prompt=render(f"{model.media_marker}\n{request}"), image=image)
            # Image tokens plus the newline after the marker; the markup around the image
            # (<|vision_start|> ...) is counted with the image.
            image_tokens = with_image.prompt_tokens - text_only.prompt_tokens - 1
            print(f"{name}: {image_tokens} tokens for a 96x64 image")  # shown by -rP
            assert image_tokens >= 4
            assert len(_generate(model, 3)) == 3
    finally:
        model.close()


@pytest.mark.parametrize("name", ARCHS)
def test_tiny_build_is_deterministic(name, tmp_path):
    cached = tiny_ggufs(name).hf_dir
    fresh = tiny.build(name, tmp_path / "hf")
    for file in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"):
        assert _sha(fresh / file) == _sha(cached / file), file


@pytest.mark.parametrize("name", sorted(SAVED_BY_TRANSFORMERS))
def test_prepare_fixes_a_linked_copy_and_never_the_original(name, tmp_path):
    spec = archs.get(name)
    assert spec.prepare is not None
    built = tiny_ggufs(name).hf_dir
    assert spec.prepare(built, tmp_path / "unneeded") == built  # hub-like: nothing to fix
    saved = tmp_path / "saved"
    shutil.copytree(built, saved)
    config = json.loads((saved / "config.json").read_text())
    SAVED_BY_TRANSFORMERS[name](config)
    (saved / "config.json").write_text(json.dumps(config))
    before = _sha(saved / "config.json")
    prepared = spec.prepare(saved, tmp_path / "prepared")
    assert prepared == tmp_path / "prepared" and _sha(saved / "config.json") == before
    assert json.loads((prepared / "config.json").read_text()) == json.loads(
        (built / "config.json").read_text()
    )
    weights = "model.safetensors"
    assert (prepared / weights).samefile(saved / weights)  # linked, not copied


def test_qwen3_quantizes_to_real_k_quants_and_loads(tmp_path):
    import llama_cpp

    f16 = tiny_ggufs("qwen3").model
    q4 = gguf.quantize(f16, tmp_path / "qwen3.Q4_K_M.gguf", "Q4_K_M")
    blocks = [
        t for t in read_gguf_info(q4).tensors if t.name.startswith("blk.") and len(t.shape) == 2
    ]
    # 256-wide rows: every layer matrix is a real K-quant, none fell back to q5_0/q8_0.
    assert blocks and all(t.ggml_type in K_QUANTS for t in blocks), [
        (t.name, t.ggml_type) for t in blocks if t.ggml_type not in K_QUANTS
    ]
    llm = llama_cpp.Llama(str(q4), n_ctx=256, n_threads=2, verbose=False, seed=0)
    try:
        assert llm.metadata["general.file_type"] == str(llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M)
        prompt = llm.tokenize(
            b"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", add_bos=False, special=True
        )
        out = [t for _, t in zip(range(4), llm.generate(prompt, temp=0.0, top_k=1))]
        assert len(out) == 4
    finally:
        llm.close()


@pytest.mark.parametrize(("arch", "shape"), SHAPES)
def test_shape_is_the_published_model(arch, shape):
    import torch

    if not isinstance(archs.get(arch).build_tiny, TinyBuilder):
        return _assert_llava_ov_shape(shape, archs.get(arch).shapes[shape])
    assert shape in PUBLISHED, f"add the published parameter count of {shape} to PUBLISHED"
    overrides = archs.get(arch).shapes[shape]
    bp = archs.get(arch).build_tiny.blueprint(**overrides)
    assert bp.config.dtype == torch.bfloat16  # the cheap init, never an f32 copy
    assert bp.config.get_text_config().vocab_size == overrides["vocab"] >= len(bp.tokenizer)
    published, kind = PUBLISHED[shape]
    total, embedding = count_parameters(bp)
    counted = total - embedding if kind == "non-embedding" else total
    assert abs(counted - published) / published <= 0.01, (kind, counted, published)


def _assert_llava_ov_shape(shape: str, overrides: dict) -> None:
    """The paper's perception models: a published Qwen3 behind SigLIP so400m-patch14-384 (the
    LLaVA-OneVision cards give no parameter count of their own)."""
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration

    from export.archs import llava_ov

    config = llava_ov.shape_config("qwen3", **overrides)
    vision = config.vision_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.patch_size, vision.image_size) == (
        1152,
        26,
        14,
        384,
    )
    assert config.dtype == torch.bfloat16  # the cheap init, never an f32 copy
    with torch.device("meta"):
        model = LlavaOnevisionForConditionalGeneration(config)
    language = model.model.language_model
    counted = sum(p.numel() for p in language.parameters()) - language.embed_tokens.weight.numel()
    published, kind = PUBLISHED[shape.removeprefix("llava-ov-")]
    assert kind == "non-embedding" and abs(counted - published) / published <= 0.01, counted
