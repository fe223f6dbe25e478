"""The ONNX parity check's vision section for Idefics3 / SmolVLM (export/parity/onnx_measure.py).

One synthetic picture, not square, that the processor resizes (and, where the checkpoint's
longest edge allows, tiles):

  "hf" layout    transformers' `Idefics3Processor` (built in memory from the checkpoint's image
                 processor and tokenizer) is the reference for everything: pixel values, the
                 prompt's token ids, `get_image_features`, and greedy tokens with the image.
  "mtmd" layout  the sizes and the token layout are libmtmd's, which transformers cannot make
                 (the GGUF twin test checks them against llama.cpp itself): the reference pixels
                 are transformers' own resize, rescale and normalize at those sizes, the
                 reference model numbers patches 0..N-1 as llama.cpp does, and the prompt ids
                 are the runtime's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_et.core.chat import render_user_turn
from edge_et.core.images import LoadedImage, pixel_sha256
from edge_et.formats import idefics3 as runtime
from export.archs.idefics3 import load_reference
from export.parity.onnx_checks import (
    IMAGE_REQUEST,
    embedding_measures,
    greedy_report,
    hf_greedy,
    onnx_greedy,
    test_picture,
)


def picture_size(layout: runtime.Layout) -> tuple[int, int]:
    """(height, width): wider than tall, off every tile multiple, its width past the longest
    edge (so the processor resizes it)."""
    longest = layout.longest_edge
    return longest * 3 // 4 + 3, longest + longest // 2 + 1


def _hf_inputs(hf_dir: Path, rgb: np.ndarray, prompt: str, layout: runtime.Layout) -> dict:
    """pixel_values (1, views, 3, tile, tile), pixel_attention_mask and input_ids, as
    transformers' processor makes them."""
    from transformers import AutoTokenizer, Idefics3ImageProcessor, Idefics3Processor

    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor.from_pretrained(hf_dir),
        tokenizer=AutoTokenizer.from_pretrained(hf_dir),
        image_seq_len=layout.tokens,
    )
    inputs = processor(text=[prompt], images=[[rgb]], return_tensors="pt")
    return {
        "pixel_values": inputs["pixel_values"],
        "pixel_attention_mask": inputs["pixel_attention_mask"],
        "ids": inputs["input_ids"][0].tolist(),
    }


def _mtmd_pixels(hf_dir: Path, rgb: np.ndarray, layout: runtime.Layout):
    """libmtmd's views (sizes from the runtime) through transformers' resize and normalize."""
    import torch
    from transformers import Idefics3ImageProcessor
    from transformers.image_utils import ChannelDimension

    proc = Idefics3ImageProcessor.from_pretrained(hf_dir)
    last = ChannelDimension.LAST

    def resize(image, height, width):
        return proc.resize(
            image,
            {"height": height, "width": width},
            resample=runtime.LANCZOS,
            input_data_format=last,
        )

    resized = resize(rgb, *runtime.resized_size(*rgb.shape[:2], layout.longest_edge))
    refined = resize(resized, *runtime.refined_size(*resized.shape[:2], layout))
    tile = layout.tile
    views = [
        refined[y : y + tile, x : x + tile]
        for y in range(0, refined.shape[0], tile)
        for x in range(0, refined.shape[1], tile)
    ] + [resize(refined, tile, tile)]
    views = [
        proc.normalize(
            proc.rescale(v, proc.rescale_factor, input_data_format=last),
            proc.image_mean,
            proc.image_std,
            input_data_format=last,
        )
        for v in views
    ]
    return torch.from_numpy(np.stack(views).transpose(0, 3, 1, 2).copy())[None]


def vision_section(hf, hf_dir: Path, model) -> dict:
    import torch

    encoder = model.vision
    layout = encoder.layout
    rgb = test_picture(*picture_size(layout))
    image = LoadedImage(
        rgb=rgb,
        width=rgb.shape[1],
        height=rgb.shape[0],
        sha256=pixel_sha256(rgb),
        source="parity",
        format="PNG",
        original_mode="RGB",
    )
    prompt = render_user_turn(
        model.chat_template,
        model.media_marker + "\n" + IMAGE_REQUEST,
        bos_text=model.bos_text,
        eos_text=model.eos_text,
    )
    before, _, after = prompt.partition(model.media_marker)
    ours_ids = (
        model.prompt_ids(before, first=True)
        + encoder.span_ids(image)
        + model.prompt_ids(after, first=False)
    )
    if layout.mode == "hf":
        ref = _hf_inputs(hf_dir, rgb, before + "<image>" + after, layout)
        pixels, extra, ids = (
            ref["pixel_values"],
            {"pixel_attention_mask": ref["pixel_attention_mask"]},
            ref["ids"],
        )
    else:
        hf = load_reference(hf_dir, "mtmd")
        pixels, extra, ids = _mtmd_pixels(hf_dir, rgb, layout), {}, ours_ids
    ours = encoder.pixel_values(rgb)
    theirs = pixels[0].numpy()
    with torch.inference_mode():
        features = hf.model.get_image_features(pixels, **extra)
    reference = features.reshape(-1, features.shape[-1]).float().numpy()
    got, _ = encoder.embed(image)
    ends = sorted(model.config["end_token_ids"])
    hf_tokens = hf_greedy(hf, ids, ends, pixel_values=pixels, **extra)
    return {
        "image_size": [int(rgb.shape[0]), int(rgb.shape[1])],
        "layout": layout.mode,
        "grid": list(runtime.grid_shape(rgb.shape[0], rgb.shape[1], layout)),
        "pixels": {
            "shape": {"hf": list(theirs.shape), "onnx": list(ours.shape)},
            "max_abs": float(np.abs(theirs - ours).max()) if theirs.shape == ours.shape else None,
        },
        "prompt_ids": {
            "reference": "transformers" if layout.mode == "hf" else "runtime",
            "equal": ids == ours_ids,
            "tokens": len(ours_ids),
        },
        "embeddings": embedding_measures(reference, got),
        "greedy": greedy_report(hf_tokens, onnx_greedy(model, prompt, image), len(ids)),
    }
