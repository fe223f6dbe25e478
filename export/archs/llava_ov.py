"""LLaVA-OneVision, the paper's perception architecture (SigLIP + 2-layer MLP + Qwen2/Qwen3).

The checkpoints `markendo/llava-extract-qwen3-{0.6B,1.7B}` are HF
`LlavaOnevisionForConditionalGeneration` with a SigLIP so400m tower cut to 26 layers (features =
the last hidden state, no post-layernorm, no head), a GELU MLP projector, an `image_newline`
vector and "anyres_max_9" tiling over 384 px tiles. The text part converts with llama.cpp's own
converter once `text_config.architectures` names the language model; the mmproj is ours
(`export.gguf.llava_ov_mmproj`), since the converter has no LLaVA-OneVision projector. Both specs
share the HF model_type, so `spec_for` picks one by `text_config.model_type`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from export.archs.base import ArchSpec
from export.gguf.llava_ov_mmproj import write_mmproj
from export.tokenizer import build_tokenizer, padded_vocab

MODEL_TYPE = "llava_onevision"
IMAGE_TOKEN, VIDEO_TOKEN = "<image>", "<video>"
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# The LLaVA-OneVision image processor's default pinpoints: every (rows, cols) grid of 1..6 tiles.
GRID_MAX = 6

# The prompt the paper evaluates with (LLaVA's `conv_qwen`, used for "qwen_1_5"/"qwen_3_0"):
# ChatML with the system turn "You are a helpful assistant.", the image first as `<image>\n`, no
# thinking block. The HF conversion's own template lacks the system turn, and a Qwen3 tokenizer's
# template would open in thinking mode; `prepare` therefore writes this one into the GGUF.
# String content is accepted: the runtime renders `<media marker>\n<request>` as a string.
DEFAULT_SYSTEM = "You are a helpful assistant."
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for part in message['content'] if part['type'] == 'image' -%}"
    "{{- '<image>\\n' -}}{%- endfor -%}"
    "{%- for part in message['content'] if part['type'] == 'text' -%}"
    "{{- part['text'] -}}{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# The LM class the converter needs in text_config.architectures, by text_config.model_type.
TEXT_ARCHITECTURES = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}

# SigLIP so400m-patch14-384 as the paper's conversion script configures it (26 layers, no head).
SIGLIP_SO400M = dict(
    vision_hidden=1152,
    vision_intermediate=4304,
    vision_layers=26,
    vision_heads=16,
    image_size=384,
    patch_size=14,
)
# Qwen3-0.6B / -1.7B; the vocabulary is Qwen3's 151,936 rows plus <image>/<video>, padded to 64.
QWEN3_SHAPES = {
    "0.6b": dict(hidden=1024, intermediate=3072, layers=28, heads=16, kv_heads=8, head_dim=128),
    "1.7b": dict(hidden=2048, intermediate=6144, layers=28, heads=16, kv_heads=8, head_dim=128),
}
FULL_SIZE = dict(vocab_size=152000, tokenizer_size=151671, dtype="bfloat16", **SIGLIP_SO400M)


def pinpoints(tile: int) -> list[list[int]]:
    """The default anyres grid resolutions, (height, width), for tiles of `tile` pixels."""
    return [[tile * r, tile * c] for r in range(1, GRID_MAX + 1) for c in range(1, GRID_MAX + 1)]


def _tokenizer(size: int | None = None):
    """The corpus BPE with Qwen's ChatML specials plus `<image>`/`<video>` (as the paper's
    conversion adds them); `size` pads it to a real vocabulary's length (full-size shapes)."""
    from transformers import Qwen2TokenizerFast

    return build_tokenizer(
        Qwen2TokenizerFast,
        special=[*QWEN_SPECIALS, IMAGE_TOKEN, VIDEO_TOKEN],
        chat_template=CHAT_TEMPLATE,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        size=size,
    )


def _text_config(
    text_type: str,
    tokenizer,
    *,
    vocab_size: int | None,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate: int,
    head_dim: int | None,
) -> dict:
    config = dict(
        model_type=text_type,
        vocab_size=vocab_size or padded_vocab(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        architectures=[TEXT_ARCHITECTURES[text_type]],
    )
    if text_type == "qwen3":
        config["head_dim"] = head_dim or hidden // heads
    return config


def build_config(
    text_type: str,
    tokenizer,
    *,
    vocab_size: int | None = None,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    head_dim: int | None = None,
    vision_hidden: int = 32,
    vision_intermediate: int = 64,
    vision_layers: int = 2,
    vision_heads: int = 2,
    image_size: int = 42,
    patch_size: int = 14,
    dtype: str = "float32",
):
    """A LlavaOnevisionConfig with the paper's choices (full features of the last SigLIP layer,
    anyres_max_9, image newline) and the given sizes."""
    from transformers import LlavaOnevisionConfig

    ids = tokenizer.convert_tokens_to_ids
    text = _text_config(
        text_type,
        tokenizer,
        vocab_size=vocab_size,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        intermediate=intermediate,
        head_dim=head_dim,
    )
    vision = dict(
        model_type="siglip_vision_model",
        hidden_size=vision_hidden,
        intermediate_size=vision_intermediate,
        num_hidden_layers=vision_layers,
        num_attention_heads=vision_heads,
        image_size=image_size,
        patch_size=patch_size,
        vision_use_head=False,
    )
    return LlavaOnevisionConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=ids(IMAGE_TOKEN),
        video_token_index=ids(VIDEO_TOKEN),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=pinpoints(image_size),
        use_image_newline_parameter=True,
        tie_word_embeddings=True,
        dtype=dtype,
    )


def shape_config(text_type: str, *, tokenizer_size: int | None = None, **overrides):
    """The config `build_tiny_*` would write for `overrides` (a full-size shape: `shapes`), with
    no weights made: what a test counts parameters of on the meta device."""
    return build_config(text_type, _tokenizer(tokenizer_size), **overrides)


def _random_model(config, seed: int):
    """Seeded random weights. Full-size shapes skip transformers' slow per-module init and draw
    every tensor from one generator in place (a 1B-parameter model in seconds, not minutes)."""
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration
    from transformers.modeling_utils import no_init_weights

    torch.manual_seed(seed)
    dtype = config.dtype if isinstance(config.dtype, torch.dtype) else getattr(torch, config.dtype)
    if dtype == torch.float32:
        return LlavaOnevisionForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with no_init_weights():
        model = LlavaOnevisionForConditionalGeneration(config).to(dtype).eval()
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith(("norm.weight", "norm1.weight", "norm2.weight")):
                tensor.fill_(1.0)  # unit norms keep activations finite through 28 layers
            else:
                tensor.normal_(0.0, 0.02, generator=generator)
    return model


def save_image_processor(out: Path, image_size: int) -> None:
    from transformers import LlavaOnevisionImageProcessor
    from transformers.image_utils import PILImageResampling

    LlavaOnevisionImageProcessor(
        size={"height": image_size, "width": image_size},
        image_grid_pinpoints=pinpoints(image_size),
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],  # SigLIP's
        resample=PILImageResampling.BICUBIC,
    ).save_pretrained(out)


def _build(
    text_type: str, out: Path, *, seed: int = 0, tokenizer_size: int | None = None, **overrides
) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(tokenizer_size)
    config = build_config(text_type, tokenizer, **overrides)
    model = _random_model(config, seed)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    save_image_processor(out, config.vision_config.image_size)
    (out / "generation_config.json").unlink(missing_ok=True)  # random weights: no sampling advice
    (out / "tiny_recipe.json").write_text(json.dumps({"seed": seed, "random_weights": True}) + "\n")
    return out


def build_tiny_qwen3(out: Path, *, seed: int = 0, **overrides) -> Path:
    """Write a seeded random LLaVA-OneVision with a Qwen3 language model to `out`."""
    return _build("qwen3", out, seed=seed, **overrides)


def build_tiny_qwen2(out: Path, *, seed: int = 0, **overrides) -> Path:
    """Write a seeded random LLaVA-OneVision with a Qwen2 language model to `out`."""
    return _build("qwen2", out, seed=seed, **overrides)


def text_model_type(hf_dir: Path) -> str:
    """`text_config.model_type` of a LLaVA-OneVision checkpoint ("qwen2", "qwen3")."""
    config = json.loads((Path(hf_dir) / "config.json").read_text())
    return config.get("text_config", {}).get("model_type", "qwen2")  # HF's default text model


def prepare(hf_dir: Path, work_dir: Path) -> Path:
    """A converter-ready view of `hf_dir` in `work_dir`: links to every file, a config.json whose
    text_config names the LM class (the converter converts the text part from it), and the
    paper's chat template (CHAT_TEMPLATE) in tokenizer_config.json."""
    hf_dir, view = Path(hf_dir).resolve(), Path(work_dir) / "llava_ov_text"
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir(parents=True)
    rewritten = (
        "config.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "chat_template.json",
    )
    for item in hf_dir.iterdir():
        if item.name not in rewritten:
            (view / item.name).symlink_to(item)
    _write_chat_template(hf_dir, view)
    config = json.loads((hf_dir / "config.json").read_text())
    text_type = config.setdefault("text_config", {}).setdefault("model_type", "qwen2")
    if text_type not in TEXT_ARCHITECTURES:
        raise ValueError(
            f"LLaVA-OneVision with a {text_type!r} language model is not supported; "
            f"known: {', '.join(TEXT_ARCHITECTURES)}"
        )
    config["text_config"]["architectures"] = [TEXT_ARCHITECTURES[text_type]]
    (view / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return view


def _write_chat_template(hf_dir: Path, view: Path) -> None:
    # The converter takes tokenizer_config.json's chat_template first: put the paper's there.
    source = hf_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(source.read_text()) if source.is_file() else {}
    tokenizer_config["chat_template"] = CHAT_TEMPLATE
    (view / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")


def _shapes() -> dict[str, dict]:
    return {f"llava-ov-qwen3-{size}": {**FULL_SIZE, **lm} for size, lm in QWEN3_SHAPES.items()}


_COMMON = dict(
    role="perception",
    model_types=(MODEL_TYPE,),
    prepare=prepare,
    write_mmproj=write_mmproj,
    pre_tokenizer="qwen2",
)
SPECS = [
    ArchSpec(
        name="llava-ov-qwen2",
        build_tiny=build_tiny_qwen2,
        gguf_arch="qwen2",
        notes="LLaVA-OneVision (SigLIP + MLP + Qwen2); own mmproj, anyres packed by edge-et",
        **_COMMON,
    ),
    ArchSpec(
        name="llava-ov-qwen3",
        build_tiny=build_tiny_qwen3,
        gguf_arch="qwen3",
        shapes=_shapes(),
        notes="the paper's perception model (llava-extract-qwen3-*); own mmproj, anyres "
        "packed by edge-et",
        **_COMMON,
    ),
]


def spec_for(hf_dir: Path) -> ArchSpec:
    """The spec of a LLaVA-OneVision checkpoint, chosen by its language model."""
    text_type = text_model_type(hf_dir)
    for spec in SPECS:
        if spec.gguf_arch == text_type:
            return spec
    raise ValueError(
        f"LLaVA-OneVision with a {text_type!r} language model is not supported; "
        f"known: {', '.join(s.gguf_arch for s in SPECS)}"
    )
