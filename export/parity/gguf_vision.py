"""Vision parity: an mmproj (libmtmd) against the transformers vision tower, per architecture.

Two measurements on one synthetic image:

1. image embeddings: what `mtmd_encode_chunk` + `mtmd_get_output_embd` return against the
   HF model's projected image features (cosine per token, and over the whole tensor);
2. the first generated token: the full VLM with the image, greedy, on both sides.

The comparison is only meaningful if both sides see the same pixels, so each architecture
chooses an image size that neither preprocessor resizes (`VisionHooks.image_size`). The prompt
is built once, by libmtmd: its text chunks (image delimiters included) and the number of image
tokens are replayed to transformers with the model's image token, so both sides run exactly
the same sequence. Hooks are keyed by HF `model_type`.
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.parity import llava_ov
from export.parity.gguf_text import (
    compare_embeddings,
    first_token,
    llama_image_side,
    load_hf_model,
)

QUESTION = "Describe the image."


def _no_extras(ids, image_token: int) -> dict:
    return {}


def _unchanged(model) -> None:
    return None


@dataclass(frozen=True)
class VisionHooks:
    """What differs between VLM families.

    image_size(config, preprocessor_config) -> (width, height): a size neither side resizes.
    hf_pixels(hf_dir, image, views) -> the pixel inputs of the HF forward, for `views` image
        chunks that libmtmd made of the image (several when it tiles).
    features(model, pixels) -> [image tokens, width] tensor in libmtmd's chunk order.
    placeholder: what the chat template writes for one image (replaced by mtmd's marker).
    forward_extras(ids, image_token) -> more forward inputs (Gemma 3's token types).
    prepare_model(model): adjust the loaded reference model in place.
    """

    image_size: Callable[[dict, dict], tuple[int, int]]
    hf_pixels: Callable[[Path, np.ndarray, int], dict]
    features: Callable[[object, dict], object]
    placeholder: str
    forward_extras: Callable[[object, int], dict] = _no_extras
    prepare_model: Callable[[object], None] = _unchanged


def _image_processor(hf_dir: Path):
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(hf_dir, use_fast=False)  # fast needs torchvision


# -- Qwen2-VL, Qwen2.5-VL, Qwen3-VL: dynamic resolution in units of patch x merge ----------


def _qwen_size(config: dict, pre: dict) -> tuple[int, int]:
    vision = config.get("vision_config", {})
    align = vision.get("patch_size", 14) * vision.get("spatial_merge_size", 2)
    # 8x6 merged tokens: above llama.cpp's minimum of 8 image tokens, below any max_pixels.
    width, height = 8 * align, 6 * align
    low = pre.get("min_pixels") or pre.get("size", {}).get("shortest_edge", 0)
    if width * height < low:  # grow until the HF processor would not upscale it
        scale = int(np.ceil(np.sqrt(low / (width * height))))
        width, height = width * scale, height * scale
    return width, height


def _qwen_pixels(hf_dir: Path, image: np.ndarray, views: int) -> dict:
    from PIL import Image

    out = _image_processor(hf_dir)(images=[Image.fromarray(image)], return_tensors="pt")
    return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}


def _qwen_features(model, pixels: dict):
    import torch

    embeds = model.get_image_features(pixels["pixel_values"], pixels["image_grid_thw"])
    if isinstance(embeds, tuple) and len(embeds) == 2 and isinstance(embeds[1], list):
        # Qwen3-VL: libmtmd appends the deepstack features to each token's embedding.
        main, deepstack = embeds
        return torch.cat([main[0], *deepstack], dim=-1)
    return embeds[0]


QWEN_VL = VisionHooks(
    _qwen_size, _qwen_pixels, _qwen_features, "<|vision_start|><|image_pad|><|vision_end|>"
)


# -- Gemma 3: one fixed-size SigLIP view, bidirectional attention over the image -----------


def _square_size(config: dict, pre: dict) -> tuple[int, int]:
    side = config["vision_config"]["image_size"]
    return side, side


def _gemma3_pixels(hf_dir: Path, image: np.ndarray, views: int) -> dict:
    from PIL import Image

    out = _image_processor(hf_dir)(images=[Image.fromarray(image)], return_tensors="pt")
    return {"pixel_values": out["pixel_values"]}


def _gemma3_features(model, pixels: dict):
    return model.get_image_features(pixels["pixel_values"])[0]


def _gemma3_token_types(ids, image_token: int) -> dict:
    # Without token types transformers attends causally inside the image; llama.cpp does not.
    return {"token_type_ids": (ids == image_token).long()}


GEMMA3 = VisionHooks(
    _square_size,
    _gemma3_pixels,
    _gemma3_features,
    "<start_of_image>",
    forward_extras=_gemma3_token_types,
)


# -- Idefics3 / SmolVLM: tiles + a global view, in the same grid on both sides -----------


def _idefics3_size(config: dict, pre: dict) -> tuple[int, int]:
    """A square of the processor's longest edge: both sides resize every picture's longest
    edge to it (up or down), so this one keeps its pixels. Being square, both cut it into
    the same grid: transformers and libmtmd round grid sides differently only when the
    aspect ratio makes the short side fall between tile multiples."""
    tile = config["vision_config"]["image_size"]
    side = (pre.get("size") or {}).get("longest_edge", tile)
    return side, side


def _idefics3_pixels(hf_dir: Path, image: np.ndarray, views: int) -> dict:
    """The processor's own views (tiles row-major, then the global view, as libmtmd orders
    its chunks). A picture that fits one tile is the exception: transformers sends it once,
    libmtmd as a 1x1 grid plus the global view, both that unresized picture (docs/pitfalls.md,
    3), so its one view stands for both."""
    from PIL import Image

    pixels = _image_processor(hf_dir)(images=[[Image.fromarray(image)]], return_tensors="pt")[
        "pixel_values"
    ]
    if pixels.shape[1] == 1 and views == 2:
        pixels = pixels.expand(1, 2, *pixels.shape[2:]).contiguous()
    if pixels.shape[1] != views:
        raise ValueError(
            f"transformers cut the {image.shape[1]}x{image.shape[0]} test picture "
            f"into {pixels.shape[1]} views but libmtmd into {views} image chunks: "
            "their layouts differ, so there is nothing to compare view by view"
        )
    return {"pixel_values": pixels}


def _idefics3_features(model, pixels: dict):
    return model.get_image_features(pixels["pixel_values"]).flatten(0, 1)


def _idefics3_sequential_positions(model) -> None:
    """Number an unpadded tile's patches 0..N-1, as llama.cpp does (docs/pitfalls.md, 5:
    transformers 4.57 buckets fp32 fractions and can repeat a position, huggingface/
    transformers#41190)."""
    import torch

    embeddings = model.model.vision_model.embeddings
    original = embeddings.forward

    def forward(pixel_values, patch_attention_mask):
        if not bool(patch_attention_mask.all()):
            return original(pixel_values, patch_attention_mask)
        patches = embeddings.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        positions = torch.arange(patches.shape[1]).expand(patches.shape[0], -1)
        return patches + embeddings.position_embedding(positions)

    embeddings.forward = forward


IDEFICS3 = VisionHooks(
    _idefics3_size,
    _idefics3_pixels,
    _idefics3_features,
    "<image>",
    prepare_model=_idefics3_sequential_positions,
)

HOOKS: dict[str, VisionHooks] = {
    "qwen2_vl": QWEN_VL,
    "qwen2_5_vl": QWEN_VL,
    "qwen3_vl": QWEN_VL,
    "gemma3": GEMMA3,
    "idefics3": IDEFICS3,
    "smolvlm": IDEFICS3,
}
# model_types whose parity another module owns: name -> its measuring function.
EXTERNAL = {"llava_onevision": llava_ov.image_embedding_parity}


def supported() -> list[str]:
    return sorted(set(HOOKS) | set(EXTERNAL))


# -- the test image ----------------------------------------------------------------------


def synthetic_image(width: int, height: int) -> np.ndarray:
    """A fixed RGB image with gradients, edges and shapes: every patch differs from the next."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [
            255 * x / max(width - 1, 1),
            255 * y / max(height - 1, 1),
            127 + 100 * np.sin((x + 2 * y) / 9.0),
        ],
        axis=-1,
    )
    image[height // 5 : height // 2, width // 6 : width // 3] = (220, 30, 30)  # a red block
    inside = (x - 0.7 * width) ** 2 + (y - 0.6 * height) ** 2 < (0.18 * min(width, height)) ** 2
    image[inside] = (20, 40, 200)  # a blue disc
    return np.clip(image, 0, 255).astype(np.uint8)


# -- transformers side --------------------------------------------------------------------


def hf_side(hf_dir: Path, hooks: VisionHooks, image: np.ndarray, layout: list) -> dict:
    """The reference image features and first-token logits on libmtmd's exact token layout."""
    import torch

    model = load_hf_model(hf_dir)
    hooks.prepare_model(model)
    image_token = _image_token_id(model.config)
    ids = torch.tensor(
        [[t for part in layout for t in (part if isinstance(part, list) else [image_token] * part)]]
    )
    pixels = hooks.hf_pixels(hf_dir, image, sum(isinstance(p, int) for p in layout))
    with torch.inference_mode():
        features = hooks.features(model, pixels).float().numpy()
        out = model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            **pixels,
            **hooks.forward_extras(ids, image_token),
        )
    logits = out.logits[0, -1].float().numpy()
    del model
    gc.collect()
    return {"embeddings": features, "logits": logits}


def _image_token_id(config) -> int:
    for key in ("image_token_id", "image_token_index"):
        value = getattr(config, key, None)
        if value is not None:
            return int(value)
    raise ValueError(f"{config.model_type}: config names no image token id")


# -- the check ---------------------------------------------------------------------------


def image_prompt(hf_dir: Path, hooks: VisionHooks, marker: str) -> str:
    """The chat prompt with one image and QUESTION, the image as libmtmd's media marker."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    if tokenizer.chat_template:
        content = [{"type": "image"}, {"type": "text", "text": QUESTION}]
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        if hooks.placeholder in rendered:
            return rendered.replace(hooks.placeholder, marker, 1)
    return f"{marker}\n{QUESTION}\n"


def vision_report(hf_dir: Path, text_gguf: Path, mmproj_gguf: Path, *, threads: int = 2) -> dict:
    """Measure the mmproj (and the VLM with an image) against `hf_dir` (no verdict)."""
    import torch

    started = time.perf_counter()
    torch.set_num_threads(threads)
    config = json.loads((hf_dir / "config.json").read_text())
    model_type = config.get("model_type", "")
    if model_type in EXTERNAL:
        return _external(model_type, hf_dir, text_gguf, mmproj_gguf, config, threads, started)
    if model_type not in HOOKS:
        raise ValueError(
            f"no vision parity hooks for model_type {model_type!r}; "
            f"supported: {', '.join(supported())}"
        )
    hooks = HOOKS[model_type]
    pre_path = hf_dir / "preprocessor_config.json"
    pre = json.loads(pre_path.read_text()) if pre_path.is_file() else {}
    width, height = hooks.image_size(config, pre)
    image = synthetic_image(width, height)
    import llama_cpp.mtmd_cpp as mtmd

    prompt = image_prompt(hf_dir, hooks, mtmd.mtmd_default_marker().decode())
    ll = llama_image_side(text_gguf, mmproj_gguf, prompt, image, threads)
    hf = hf_side(hf_dir, hooks, image, ll["layout"])
    return {
        "mmproj": mmproj_gguf.name,
        "image_size": [width, height],
        "image_tokens": sum(p for p in ll["layout"] if isinstance(p, int)),
        "embeddings": compare_embeddings(
            hf["embeddings"], ll["embeddings"], [p for p in ll["layout"] if isinstance(p, int)]
        ),
        "first_token": first_token(hf["logits"], ll["logits"]),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _external(
    model_type: str,
    hf_dir: Path,
    text_gguf: Path,
    mmproj_gguf: Path,
    config: dict,
    threads: int,
    started: float,
) -> dict:
    """Architectures whose parity another module owns (LLaVA-OneVision's view packing);
    its result is mapped onto this module's report fields and also kept whole."""
    measure = EXTERNAL[model_type]
    side = config.get("vision_config", {}).get("image_size", 384)  # one tile: the base view
    with tempfile.TemporaryDirectory() as tmp:
        from PIL import Image

        path = Path(tmp) / "parity.png"
        Image.fromarray(synthetic_image(side, side)).save(path)
        result = measure(hf_dir, text_gguf, mmproj_gguf, path, threads=threads)
    shape = [result.get("n_tokens_ref"), result.get("n_tokens_gguf")]
    # Newer versions return this module's `embeddings` and `first_token` fields themselves.
    embeddings = result.get("embeddings") or (
        {"shape": {"hf": shape[:1], "llama_cpp": shape[1:]}}
        if shape[0] != shape[1]
        else {
            "shape": shape[:1],
            "cosine": result["cosine"],
            "min_token_cosine": result["min_token_cosine"],
            "max_abs": result.get("max_abs_diff"),
        }
    )
    # Without reference logits no near-tie can be forgiven (ref_gap None).
    first = result.get("first_token") or {
        "hf": result.get("first_token_ref"),
        "llama_cpp": result.get("first_token_gguf"),
        "ref_gap": None,
        "max_abs": result.get("logits_max_abs_diff"),
    }
    return {
        "mmproj": mmproj_gguf.name,
        "image_size": [side, side],
        "image_tokens": shape[1],
        "embeddings": embeddings,
        "first_token": first,
        "external": {
            "function": f"{measure.__module__}.{measure.__name__}",
            "result": {k: v for k, v in result.items() if k not in ("embeddings", "first_token")},
        },
        "seconds": round(time.perf_counter() - started, 2),
    }
