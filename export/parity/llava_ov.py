"""LLaVA-OneVision parity: edge-et's mtmd views + numpy packing against transformers.

What is compared, on one image (same decoded pixels on both sides):
- the packed image features: `LlavaOnevisionModel.get_image_features` (what the model puts in
  place of the image tokens) against `LlavaOvImages.embed` (mtmd per view + our packing);
- the number of image tokens: the model's, the HF processor's formula, and ours;
- the first greedy token of a full prompt with the image: transformers (fp32) against
  `LlamaCppModel.start(prompt=..., image=...)` + greedy sampling.

transformers runs in a worker subprocess (`reference`, kind "llava-ov-reference" of
export/parity/worker.py) so that torch never shares a process with llama.cpp; llama.cpp runs here.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from edge_et.core.chat import render_user_turn
from edge_et.core.decoding import Sampling
from edge_et.core.images import load_image
from edge_et.formats.llava_ov import grid_shape
from export.parity.gguf_text import compare_embeddings, first_token
from export.parity.launcher import run_worker

QUESTION = "Describe the image."


def image_embedding_parity(
    hf_dir: Path,
    text_gguf: Path,
    mmproj_gguf: Path,
    image_path: Path,
    *,
    question: str = QUESTION,
    threads: int = 2,
) -> dict:
    """Measure a LLaVA-OneVision GGUF pair against its HF checkpoint on `image_path`.

    Returns dict(cosine, min_token_cosine, max_abs_diff, n_tokens_ref, n_tokens_processor,
    n_tokens_gguf, first_token_ref, first_token_gguf, first_token_match, logits_max_abs_diff
    (last position, the one the first token is sampled from), prompt_tokens_ref,
    prompt_tokens_gguf, grid (tile rows, cols), encode_s, reference_s), plus the sections
    "embeddings" and "first_token" in export.parity.gguf_vision's format (what export.parity.gguf
    judges). `cosine` is over all packed features flattened, `min_token_cosine` the worst
    single token; both NaN when the token counts differ.
    """
    image = load_image(image_path)
    with tempfile.TemporaryDirectory() as tmp:
        pixels = Path(tmp) / "pixels.npy"
        np.save(pixels, image.rgb)
        llama = _llama_side(text_gguf, mmproj_gguf, image, question, threads)
        started = time.perf_counter()
        ref = _reference(Path(hf_dir), pixels, llama["prompt"], Path(tmp))
        ref_s = time.perf_counter() - started
    # The sections export.parity.gguf judges, in export.parity.gguf_vision's format.
    embeddings = compare_embeddings(ref["features"], llama["features"])
    first = first_token(ref["logits"], llama["logits"])
    nan = float("nan")
    return {
        "cosine": embeddings.get("cosine", nan),
        "min_token_cosine": embeddings.get("min_token_cosine", nan),
        "max_abs_diff": embeddings.get("max_abs", nan),
        "n_tokens_ref": len(ref["features"]),
        "n_tokens_processor": ref["n_processor"],
        "n_tokens_gguf": len(llama["features"]),
        "grid": llama["grid"],
        "first_token_ref": ref["first_token"],
        "first_token_gguf": llama["first_token"],
        "first_token_match": ref["first_token"] == llama["first_token"],
        "logits_max_abs_diff": first["max_abs"],
        "prompt_tokens_ref": ref["prompt_tokens"],
        "prompt_tokens_gguf": llama["prompt_tokens"],
        "encode_s": round(llama["encode_s"], 3),
        "reference_s": round(ref_s, 2),
        "embeddings": embeddings,
        "first_token": first,
    }


# -- llama.cpp side (this process) -----------------------------------------------------------


def _llama_side(text_gguf: Path, mmproj_gguf: Path, image, question: str, threads: int) -> dict:
    from edge_et.backends.llama_cpp.model import LlamaCppModel

    model = LlamaCppModel(
        model_path=str(text_gguf), mmproj_path=str(mmproj_gguf), n_ctx=8192, n_threads=threads
    )
    try:
        images = model.llava_ov_images  # the model's LLaVA-OneVision path (None: not our mmproj)
        if images is None:
            raise ValueError(f"{Path(mmproj_gguf).name} is not an edge-et LLaVA-OneVision mmproj")
        started = time.perf_counter()
        features = images.embed(image)
        encode_s = time.perf_counter() - started
        prompt = render_user_turn(model.chat_template, model.media_marker + "\n" + question)
        stats = model.start(prompt=prompt, image=image)
        seen: list[np.ndarray] = []  # the logits the greedy sampler reads
        first = model.sample(sampling=Sampling(), edit=lambda logits: seen.append(logits.copy()))
    finally:
        model.close()
    return {
        "features": features,
        "encode_s": encode_s,
        "first_token": int(first),
        "logits": seen[0],
        "prompt_tokens": stats.prompt_tokens,
        "grid": list(grid_shape(image.height, image.width, images.layout)),
        "prompt": prompt.replace(model.media_marker, "<image>"),
    }


# -- transformers side (subprocess) ----------------------------------------------------------


def _reference(hf_dir: Path, pixels: Path, prompt: str, tmp: Path) -> dict:
    out = tmp / "reference.npz"
    request = {"hf_dir": str(hf_dir), "pixels": str(pixels), "prompt": prompt, "out": str(out)}
    outcome = run_worker(
        "llava-ov-reference", request, timeout=3600, label="the transformers reference"
    )
    if isinstance(outcome, str):
        raise RuntimeError(outcome)
    data = np.load(out)
    return {
        "features": data["features"],
        "first_token": int(data["first_token"]),
        "logits": data["logits"],
        "n_processor": int(data["n_processor"]),
        "prompt_tokens": int(data["prompt_tokens"]),
    }


def processor_token_count(hf_dir: Path, height: int, width: int) -> int:
    """Image tokens the HF LlavaOnevisionProcessor puts in a prompt for a height x width image.

    Its own formula, called without building the processor (that needs a video processor,
    hence torchvision, which these machines lack).
    """
    from functools import partial
    from types import SimpleNamespace

    from transformers import LlavaOnevisionConfig, LlavaOnevisionImageProcessor
    from transformers import LlavaOnevisionProcessor as Processor

    config = LlavaOnevisionConfig.from_pretrained(hf_dir)
    tile, patch = config.vision_config.image_size, config.vision_config.patch_size
    fake = SimpleNamespace(
        image_processor=LlavaOnevisionImageProcessor.from_pretrained(hf_dir),
        num_image_tokens=(tile // patch) ** 2,
        vision_aspect_ratio=config.vision_aspect_ratio,
    )
    fake._get_unpadded_features = partial(Processor._get_unpadded_features, fake)
    return Processor._get_number_of_features(fake, height, width, tile, tile)


def reference(hf_dir: str, pixels: str, prompt: str, out: str) -> dict:
    """The worker's body: HF features, token count and first greedy token, saved as .npz in
    `out`; returns {"out": out} as the worker's report."""
    import torch
    from transformers import (
        AutoTokenizer,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
    )

    hf_dir, rgb = Path(hf_dir), np.load(pixels)
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32)
    model.eval()
    inputs = LlavaOnevisionImageProcessor.from_pretrained(hf_dir)(rgb, return_tensors="pt")
    with torch.no_grad():
        features = model.model.get_image_features(inputs["pixel_values"], inputs["image_sizes"])[0]
        ids = _prompt_ids(
            AutoTokenizer.from_pretrained(hf_dir),
            prompt,
            model.config.image_token_id,
            len(features),
        )
        logits = model(
            input_ids=torch.tensor([ids]),
            pixel_values=inputs["pixel_values"],
            image_sizes=inputs["image_sizes"],
        ).logits[0, -1]
    np.savez(
        out,
        features=features.float().numpy(),
        logits=logits.float().numpy(),
        first_token=int(logits.argmax()),
        prompt_tokens=len(ids),
        n_processor=processor_token_count(hf_dir, *rgb.shape[:2]),
    )
    return {"out": out}


def _prompt_ids(tokenizer, prompt: str, image_id: int, n_image: int) -> list[int]:
    # What the processor does: one <image> in the text becomes n_image image tokens.
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    at = ids.index(image_id)
    return ids[:at] + [image_id] * n_image + ids[at + 1 :]
