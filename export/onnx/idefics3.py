"""Idefics3 / SmolVLM's vision side to ONNX: SigLIP tiles + pixel-shuffle connector.

`vision.onnx` maps views (views, 3, tile, tile) to connector outputs (views, tokens, LLM width),
what `Idefics3Model.get_image_features` computes for unpadded tiles. transformers derives the
patch mask with `Unfold` and the patch positions with a bucketize loop per image; neither
traces, and for whole tiles both are constants, so the positions are computed once here and
baked in (docs/pitfalls.md, ONNX).

Which positions depends on the image layout (edge_et/formats/idefics3.py explains both):
"hf" keeps transformers' own (recorded from its embeddings module on a whole tile), "mtmd"
numbers patches 0..N-1 as llama.cpp does, with `export.archs.idefics3.sequential_positions`,
the rule our micro models were trained with. `default_layout` picks "mtmd" for checkpoints trained
by export.micro.train and "hf" for every other one.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_et.errors import InputError
from edge_et.formats.idefics3 import LAYOUTS, Layout, max_views
from export.archs.idefics3 import load_reference
from export.micro.train import trained_recipe
from export.onnx.stage import OPSET

MODEL_TYPES = ("idefics3", "smolvlm")
_SPECIALS = {"fake": "<fake_token_around_image>", "global": "<global-img>", "image": "<image>"}


def default_layout(hf_dir: Path) -> str:
    """ "mtmd" for a checkpoint trained by export.micro.train (libmtmd's layout), else "hf"."""
    return "mtmd" if trained_recipe(Path(hf_dir)) else "hf"


def check_layout(layout: str | None) -> str | None:
    if layout is not None and layout not in LAYOUTS:
        raise InputError(
            f"--image-layout {layout!r} is not known; choose one of: {', '.join(LAYOUTS)}"
        )
    return layout


def patch_positions(model):
    """The position ids the vision embeddings give one whole tile (1, patches), recorded from
    the module itself so that they are whatever its forward (patched or not) computes."""
    import torch

    embeddings = model.model.vision_model.embeddings
    tile = model.config.vision_config.image_size
    side = tile // model.config.vision_config.patch_size
    seen = []
    hook = embeddings.position_embedding.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach().clone())
    )
    try:
        with torch.no_grad():
            embeddings(torch.zeros(1, 3, tile, tile), torch.ones(1, side, side, dtype=torch.bool))
    finally:
        hook.remove()
    return seen[0].reshape(1, -1)


def _tiles_module(model, positions):
    import torch

    vision, connector = model.model.vision_model, model.model.connector

    class Tiles(torch.nn.Module):
        """pixel_values (views, 3, tile, tile) → connector outputs (views, tokens, width)."""

        def __init__(self):
            super().__init__()
            self.vision, self.connector = vision, connector
            self.register_buffer("positions", positions, persistent=False)

        def forward(self, pixel_values):
            embeddings = self.vision.embeddings
            patches = embeddings.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
            hidden = patches + embeddings.position_embedding(self.positions)
            hidden = self.vision.encoder(inputs_embeds=hidden).last_hidden_state
            return self.connector(self.vision.post_layernorm(hidden))

    return Tiles().eval()


def span_tokens(hf_dir: Path, max_side: int) -> dict:
    """The delimiter ids of the image span, from the checkpoint's tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    vocab = tokenizer.get_vocab()
    tiles = [[f"<row_{r}_col_{c}>" for c in range(1, max_side + 1)] for r in range(1, max_side + 1)]
    missing = [t for t in [*_SPECIALS.values(), *tiles[-1]] if t not in vocab]
    if missing:
        raise InputError(
            f"{hf_dir.name}: the tokenizer lacks {missing[0]!r}, which the "
            "Idefics3 image layout needs"
        )
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    return {
        **{key: vocab[text] for key, text in _SPECIALS.items()},
        "newline": encode("\n"),
        "blank": encode("\n\n"),
        "tiles": [[vocab[t] for t in row] for row in tiles],
    }


def export_idefics3(
    hf_dir: Path, out_dir: Path, *, file: str = "vision.onnx", layout: str | None = None
) -> dict:
    """Write `vision.onnx` into `out_dir`; returns the config's vision section."""
    import math

    import torch

    hf_dir = Path(hf_dir)
    layout = check_layout(layout) or default_layout(hf_dir)
    model = load_reference(hf_dir, layout)
    vision = model.config.vision_config
    tile, scale = vision.image_size, model.config.scale_factor
    dummy = torch.zeros(2, 3, tile, tile)
    with torch.no_grad():
        torch.onnx.export(
            _tiles_module(model, patch_positions(model)),
            (dummy,),
            str(Path(out_dir) / file),
            input_names=["pixel_values"],
            output_names=["image_embeds"],
            dynamic_axes={"pixel_values": {0: "views"}, "image_embeds": {0: "views"}},
            opset_version=OPSET,
            dynamo=False,
        )
    processor = json.loads((hf_dir / "preprocessor_config.json").read_text())
    tiles = int(processor.get("max_image_size", {}).get("longest_edge", tile))
    if tiles != tile:  # the processor would cut tiles the tower was not exported for
        raise InputError(
            f"{hf_dir.name}: the processor cuts {tiles}-pixel tiles but the vision "
            f"tower takes {tile}-pixel images"
        )
    section = {
        "kind": "idefics3",
        "file": file,
        "layout": layout,
        "tile": tile,
        "longest_edge": int(processor.get("size", {}).get("longest_edge", tile)),
        "tokens_per_view": (tile // vision.patch_size // scale) ** 2,
        "resample": int(processor.get("resample", 1)),
        "do_image_splitting": bool(processor.get("do_image_splitting", True)),
        "mean": processor["image_mean"],
        "std": processor["image_std"],
        "rescale": processor.get("rescale_factor", 1 / 255),
        "image_token_id": model.config.image_token_id,
        # The tower's sizes: the memory planner sizes the encoder's activations from them.
        "patches_per_view": (tile // vision.patch_size) ** 2,
        "vision_hidden": vision.hidden_size,
        "vision_heads": vision.num_attention_heads,
        "vision_intermediate": vision.intermediate_size,
    }
    side = math.isqrt(max_views(Layout.from_config(section)) - 1) or 1
    section["span_tokens"] = span_tokens(hf_dir, side)
    return section
