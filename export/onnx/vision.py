"""Vision towers + projectors to ONNX with `torch.onnx.export`, one function per architecture.

optimum-onnx exports no VLM, so each architecture's image path is wrapped in a small module
whose forward is exactly what its transformers model computes between pixel values and the
embeddings the language model reads, and traced at a fixed view size (the batch of views is
the one dynamic axis). Each exporter also returns the `vision` section of onnx_config.json:
what the runtime (edge_et/backends/onnx/vision.py) needs to cut, normalise and pack images.

- llava_onevision: SigLIP (hidden state of `vision_feature_layer`, "full" or "default"
  selection) + the MLP projector, per 384 px view; the image-newline vector is saved beside it
  (`newline.npy`) because the packing happens in numpy.
- qwen2_vl, qwen2_5_vl: export/onnx/qwen2vl.py (any patch grid; rotary tables, and Qwen2.5-VL's
  window mask, as inputs).
- idefics3 / smolvlm: SigLIP per tile + the pixel-shuffle connector (export/onnx/idefics3.py),
  in transformers' or libmtmd's image layout (option `layout`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_et.errors import InputError
from export.onnx.idefics3 import export_idefics3
from export.onnx.qwen2vl import export_qwen2vl
from export.onnx.stage import OPSET

NEWLINE_FILE = "newline.npy"


def _llava_ov_module(model):
    import torch

    config = model.config

    class Views(torch.nn.Module):
        """pixel_values (views, 3, tile, tile) → projected features (views, tokens, width)."""

        def __init__(self):
            super().__init__()
            self.tower, self.projector = model.model.vision_tower, model.model.multi_modal_projector

        def forward(self, pixel_values):
            states = self.tower(pixel_values, output_hidden_states=True).hidden_states
            layer = config.vision_feature_layer
            features = (
                states[layer]
                if isinstance(layer, int)
                else torch.cat([states[i] for i in layer], dim=-1)
            )
            if config.vision_feature_select_strategy == "default":
                features = features[:, 1:]
            return self.projector(features)

    return Views().eval()


def export_llava_ov(hf_dir: Path, out_dir: Path, *, file: str = "vision.onnx") -> dict:
    """Write `vision.onnx` and `newline.npy` into `out_dir`; returns the config's vision section."""
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration

    model = LlavaOnevisionForConditionalGeneration.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    vision = model.config.vision_config
    tile = vision.image_size
    dummy = torch.zeros(2, 3, tile, tile)
    with torch.no_grad():
        torch.onnx.export(
            _llava_ov_module(model),
            (dummy,),
            str(Path(out_dir) / file),
            input_names=["pixel_values"],
            output_names=["image_embeds"],
            dynamic_axes={"pixel_values": {0: "views"}, "image_embeds": {0: "views"}},
            opset_version=OPSET,
            dynamo=False,
        )
    np.save(Path(out_dir) / NEWLINE_FILE, model.model.image_newline.detach().float().numpy())
    processor = json.loads((Path(hf_dir) / "preprocessor_config.json").read_text())
    return {
        "kind": "llava_onevision",
        "file": file,
        "tile": tile,
        "side": tile // vision.patch_size,
        "pinpoints": [list(p) for p in model.config.image_grid_pinpoints],
        "max_tiles": int(str(model.config.vision_aspect_ratio).removeprefix("anyres_max_")),
        "newline": NEWLINE_FILE,
        "mean": processor["image_mean"],
        "std": processor["image_std"],
        "rescale": processor.get("rescale_factor", 1 / 255),
        "image_token_id": model.config.image_token_id,
        # The tower's sizes: the memory planner sizes the encoder's activations from them.
        "vision_hidden": vision.hidden_size,
        "vision_heads": vision.num_attention_heads,
        "vision_intermediate": vision.intermediate_size,
    }


# model_type → exporter(hf_dir, out_dir, **options) -> vision section
EXPORTERS = {
    "llava_onevision": export_llava_ov,
    "qwen2_vl": export_qwen2vl,
    "qwen2_5_vl": export_qwen2vl,
    "idefics3": export_idefics3,
    "smolvlm": export_idefics3,
}
# Options only some exporters take: name → the model types that take it.
OPTIONS = {"layout": ("idefics3", "smolvlm")}


def check_options(hf_dir: Path, **options) -> dict:
    """The options set (not None), checked to apply to this checkpoint's model type."""
    model_type = json.loads((Path(hf_dir) / "config.json").read_text()).get("model_type")
    given = {k: v for k, v in options.items() if v is not None}
    for name in given:
        if model_type not in OPTIONS.get(name, ()):
            raise InputError(
                f"the image {name} option applies to "
                f"{'/'.join(OPTIONS.get(name, ()))} checkpoints, not {model_type}"
            )
    return given


def export_vision(hf_dir: Path, out_dir: Path, **options) -> dict:
    """The vision graph of the VLM in `hf_dir`; ValueError naming the supported model types.
    `options` set to None are left to the exporter's default."""
    model_type = json.loads((Path(hf_dir) / "config.json").read_text()).get("model_type")
    if model_type not in EXPORTERS:
        raise ValueError(
            f"no ONNX vision export for {model_type!r} yet; supported: {', '.join(EXPORTERS)}"
        )
    return EXPORTERS[model_type](Path(hf_dir), Path(out_dir), **check_options(hf_dir, **options))
