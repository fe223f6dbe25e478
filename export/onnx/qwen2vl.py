"""Qwen2-VL's and Qwen2.5-VL's vision tower + patch merger to ONNX by torch.onnx, one graph
for every grid.

The tower's rotary table depends on the image's patch grid (`rot_pos_emb`), and its attention
splits the sequence at `cu_seqlens` with Python-side lengths that tracing would bake in. So the
wrapper takes the rotary cos/sin as graph inputs (the runtime computes them in numpy from the
grid, edge_et/backends/onnx/qwen2vl.py) and attends over the whole sequence: the runtime encodes
one image per call, for which the split is a single block anyway.

    pixel_values (patches, C·T·P·P), rotary_cos, rotary_sin (patches, head_dim)
    → image_embeds (patches / merge², LLM width)

Qwen2.5-VL (RMSNorm, gated MLP, windowed attention outside `fullatt_block_indexes`) also takes
`window_mask` (patches, patches), its patches and cos/sin rows in window order
(edge_et/formats/qwen2vl.py); its windowed blocks add the mask, the others do not.
"""

from __future__ import annotations

import json
from pathlib import Path

from export.onnx.stage import OPSET

# A traced grid of 4 x 6 patches (one 2 x 3 block of merged tokens): no axis of size 1.
_TRACE_GRID = (1, 4, 6)


def _attention(attn, hidden, cos, sin, mask=None):
    """VisionAttention over one image: all patches attend to all (plus an additive `mask`)."""
    import torch
    from transformers.models.qwen2_vl.modeling_qwen2_vl import apply_rotary_pos_emb_vision

    n = hidden.shape[0]
    q, k, v = attn.qkv(hidden).reshape(n, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
    q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # (heads, patches, head_dim)
    scores = torch.matmul(q, k.transpose(1, 2)) * attn.scaling
    if mask is not None:
        scores = scores + mask
    out = torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32), v)
    return attn.proj(out.transpose(0, 1).reshape(n, -1))


def tower_sizes(model_type: str, vision) -> dict:
    """The tower's width, heads and MLP width (the two configs name them differently)."""
    if model_type == "qwen2_5_vl":
        width, ff = vision.hidden_size, vision.intermediate_size
    else:
        width, ff = vision.embed_dim, int(vision.embed_dim * vision.mlp_ratio)
    return {"vision_hidden": width, "vision_heads": vision.num_heads, "vision_intermediate": ff}


def vision_module(model, windowed: frozenset[int] = frozenset()):
    """pixel_values + rotary cos/sin (+ window mask, when some blocks are `windowed`) → merged
    image embeddings, for Qwen2-VL and Qwen2.5-VL (which takes its patches in window order)."""
    import torch

    visual = model.model.visual

    class Vision(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = visual

        def forward(self, pixel_values, rotary_cos, rotary_sin, *window_mask):
            hidden = self.visual.patch_embed(pixel_values)
            for index, block in enumerate(self.visual.blocks):
                mask = window_mask[0] if index in windowed else None
                hidden = hidden + _attention(
                    block.attn, block.norm1(hidden), rotary_cos, rotary_sin, mask
                )
                hidden = hidden + block.mlp(block.norm2(hidden))
            return self.visual.merger(hidden)

    return Vision().eval()


def trace_inputs(sizes: dict, processor: dict, windowed: bool):
    """Zero pixels, the rotary table (and window mask) of the traced grid, as numpy makes them."""
    import torch

    from edge_et.formats.qwen2vl import rotary_table, window_mask

    t, h, w = _TRACE_GRID
    patch, merge = processor["patch_size"], processor["merge_size"]
    width = 3 * processor["temporal_patch_size"] * patch * patch
    cos, sin = rotary_table(
        (t, h, w), head_dim=sizes["vision_hidden"] // sizes["vision_heads"], merge=merge
    )
    inputs = [torch.zeros(t * h * w, width), torch.from_numpy(cos), torch.from_numpy(sin)]
    if windowed:  # two windows: the mask is an input, its values do not shape the trace
        half = t * h * w // (2 * merge * merge)
        inputs.append(torch.from_numpy(window_mask([half, half], merge * merge)))
    return tuple(inputs)


def export_qwen2vl(hf_dir: Path, out_dir: Path, *, file: str = "vision.onnx") -> dict:
    """Write `vision.onnx` of a Qwen2-VL or Qwen2.5-VL into `out_dir`; returns the config's
    vision section."""
    import torch
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    processor = json.loads((Path(hf_dir) / "preprocessor_config.json").read_text())
    model_type, vision = model.config.model_type, model.config.vision_config
    sizes = tower_sizes(model_type, vision)
    full = set(getattr(vision, "fullatt_block_indexes", None) or range(vision.depth))
    windowed = frozenset(range(vision.depth)) - full
    names = ["pixel_values", "rotary_cos", "rotary_sin"] + (["window_mask"] if windowed else [])
    axes = {name: {0: "patches"} for name in names}
    if windowed:
        axes["window_mask"] = {0: "patches", 1: "patches"}
    axes["image_embeds"] = {0: "tokens"}
    with torch.no_grad():
        torch.onnx.export(
            vision_module(model, windowed),
            trace_inputs(sizes, processor, bool(windowed)),
            str(Path(out_dir) / file),
            input_names=names,
            output_names=["image_embeds"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    section = {
        "kind": model_type,
        "file": file,
        **processor_section(processor),
        "wrap": _vision_boundaries(hf_dir, model.config),
        "image_token_id": model.config.image_token_id,
        **sizes,
    }
    if windowed:
        section["window_size"] = int(vision.window_size)
    return section


def _vision_boundaries(hf_dir: Path, config) -> list[str]:
    """The texts around an image's tokens (`<|vision_start|>`, `<|vision_end|>`), as the chat
    template writes them and llama.cpp's mtmd inserts them."""
    from transformers import AutoTokenizer

    tokens = AutoTokenizer.from_pretrained(hf_dir).convert_ids_to_tokens
    return [tokens(config.vision_start_token_id), tokens(config.vision_end_token_id)]


def processor_section(processor: dict) -> dict:
    """What the numpy Qwen2VLImageProcessor needs from preprocessor_config.json."""
    size = processor.get("size") or {}
    return {
        "patch_size": processor["patch_size"],
        "merge_size": processor["merge_size"],
        "temporal_patch_size": processor["temporal_patch_size"],
        # As the processor's __init__: min_pixels/max_pixels, where given, override `size`.
        "min_pixels": int(processor.get("min_pixels") or size["shortest_edge"]),
        "max_pixels": int(processor.get("max_pixels") or size["longest_edge"]),
        "mean": processor["image_mean"],
        "std": processor["image_std"],
        "rescale": processor.get("rescale_factor", 1 / 255),
    }
