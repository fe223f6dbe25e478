"""How much memory an ONNX stage will take, from its files and onnx_config.json (nothing loads).

Derived from how edge_et/backends/onnx/model.py runs the graphs, with the constants marked
"measured" fitted on a SmolLM2-135M-shaped model (onnxruntime 1.32, Linux x86_64, CPU provider,
n_ctx 1024, a 1016-token prompt then 32 tokens: estimate vs peak RSS, see docs/onnx.md):

- weights: every graph file the stage opens (external data included), plus what ONNX Runtime's
  CPU provider makes of it (`repack_bytes`): MatMul weights are prepacked into a second copy,
  and fp16 weights are cast to float32 first (the CPU kernels are float32), so an fp16 export
  saves disk, not memory, on a CPU.
- KV cache: float32 keys and values per layer, n_head_kv × head_dim each, for n_ctx positions,
  twice: a step's `present` outputs are allocated while its `past` inputs are still alive.
- compute: one prefill chunk (PREFILL_CHUNK positions): its logits over the vocabulary, its
  attention scores against the whole context, and a few hidden-state copies, plus
  ORT_FIXED_BYTES for the arenas and session bookkeeping; int8 graphs hold two more copies of the
  chunk's logits (the integer MatMul's int32 output and its rescaled float copy).
- vision (perception): vision.onnx (resident like the decoder), and for the largest picture
  (LLaVA-OneVision: a base view plus the largest pinpoint grid, 37 views for 6 x 6) its
  normalised views, their features, the packed embeddings (at most max_tiles x 1.21 views'
  worth, with newlines) and the activations of VIEW_BATCH views at a time (derived only);
  Idefics3: the largest grid (ceil(longest_edge / tile) tiles a side) plus the global view,
  each tile's patches through the tower and its pixel-shuffled tokens to the LLM.
A q8_0 KV cache is a llama.cpp option: the estimate is the same for it, so the planner never
gains room by asking for one.
"""

from __future__ import annotations

import math
from pathlib import Path

from edge_et.formats import idefics3
from edge_et.memory.footprint import StageFootprint, VisionShape
from edge_et.memory.probes import MiB

F32 = 4
PREFILL_CHUNK = 256  # edge_et.backends.onnx.model feeds prompts in chunks of this many
HIDDEN_COPIES = 8  # residual stream, norms, q/k/v and MLP activations of a chunk
ORT_FIXED_BYTES = 48 * MiB  # onnxruntime's library pages, arenas and session bookkeeping
VIEW_BATCH = 4  # edge_et.backends.onnx.vision encodes this many views per call
# SigLIP so400m's sizes, for bundles whose vision section does not record the tower's own.
SIGLIP = {"hidden": 1152, "intermediate": 4304, "heads": 16}
# Measured: resident bytes after load per byte of graph file, by export precision.
# int4 (a mobile package's .ort reasoner; onnxruntime 1.32 prepacks MatMulNBits weights), refitted
# on the packages with a quantized token embedding (one stage alone, `plan --ctx 256` against
# the measured peak RSS; benchmarks/results/mobile*.md): the demo's 1.5B needs 2.59 (2.5 planned
# 0.97x of its 3,353 MiB); with 2.65 the plan is 1.05x for it, 1.10x for Qwen2.5-Coder-0.5B and
# 1.18x for SmolLM2-135M (a quantized Gather is not prepacked, so the factor depends on how much
# of the file the table is: the largest measured need, with a margin).
RESIDENT_PER_FILE_BYTE = {"fp32": 2.08, "int8": 2.62, "fp16": 3.94, "int4": 2.65}
PATCH_KINDS = ("qwen2_vl", "qwen2_5_vl")  # one picture = one call over its whole patch grid
# Measured on the tiny Qwen2-VL / Qwen2.5-VL at their largest picture (1,024 patches): a block's
# scores, scaled scores and softmax are alive at once. The estimate is then 1.17x the measured
# peak growth of the encode (60 vs 51 MiB, 64 vs 56 MiB).
ATTENTION_COPIES = 3
INT8_LOGIT_COPIES = 2  # measured: the int8 run's extra over the float32 one, in chunk logits


def file_bytes(path: Path) -> int:
    """A graph file's bytes with its external data (`<name>_data` or `<name>.data`)."""
    extra = [path.with_name(path.name + suffix) for suffix in ("_data", ".data")]
    return path.stat().st_size + sum(p.stat().st_size for p in extra if p.is_file())


def _patch_bounds(vision: dict) -> tuple[int, int, int]:
    """(patch side, merge, most patches of one picture) of a patch-grid (Qwen2-VL) section."""
    patch, merge = int(vision["patch_size"]), int(vision["merge_size"])
    tokens = int(vision["max_pixels"]) // (patch * merge) ** 2
    return patch, merge, tokens * merge * merge


def vision_shape(config: dict) -> VisionShape:
    """The image-token bounds of an ONNX vision section, as the GGUF planner describes them."""
    vision = config.get("vision") or {}
    if vision.get("kind") in PATCH_KINDS:
        # The runtime resizes as the HF processor does: any picture ends within max_pixels.
        patch, merge, patches = _patch_bounds(vision)
        return VisionShape(
            projector="onnx:" + vision["kind"],
            image_size=math.isqrt(int(vision["max_pixels"])),
            patch_size=patch,
            n_embd=0,
            n_ff=0,
            merge=merge,
            max_tokens=patches // (merge * merge),
            warmup_tokens=0,
        )
    if vision.get("kind") == "idefics3":
        return _idefics3_shape(vision)
    tile, side = int(vision.get("tile", 384)), int(vision.get("side", 27))
    per_view = side * side
    grid = int(int(vision.get("max_tiles", 9)) * 1.21 * per_view)
    return VisionShape(
        projector="onnx:" + str(vision.get("kind", "")),
        image_size=tile,
        patch_size=max(1, tile // side),
        n_embd=0,
        n_ff=0,
        merge=1,
        max_tokens=per_view + grid + int(grid**0.5) + 1,
        warmup_tokens=per_view,
    )


def _idefics3_shape(vision: dict) -> VisionShape:
    """Tiles of `tile` pixels, the largest picture's span (views and delimiters) as its bound."""
    tile, per_view = int(vision["tile"]), int(vision["tokens_per_view"])
    patches = int(vision.get("patches_per_view", per_view))
    return VisionShape(
        projector="onnx:idefics3",
        image_size=tile,
        patch_size=max(1, tile // max(1, math.isqrt(patches))),
        n_embd=0,
        n_ff=0,
        merge=max(1, math.isqrt(patches // per_view)),
        max_tokens=idefics3.max_span(
            idefics3.Layout.from_config(vision),
            idefics3.SpanTokens.from_config(vision["span_tokens"]),
        ),
        warmup_tokens=per_view,
    )


def _views(vision: dict) -> tuple[int, int, int]:
    """(views of the largest picture, patches the tower sees per view, embeddings per view)."""
    if vision.get("kind") == "idefics3":
        per_view = int(vision["tokens_per_view"])
        return (
            idefics3.max_views(idefics3.Layout.from_config(vision)),
            int(vision.get("patches_per_view", per_view)),
            per_view,
        )
    tile, side = int(vision.get("tile", 384)), int(vision.get("side", 27))
    cells = [h * w // (tile * tile) for h, w in vision.get("pinpoints") or [[tile, tile]]]
    return 1 + max(cells), side * side, side * side


def onnx_footprint(
    spec, n_ctx: int, kv_type: str = "f16", *, text_reserve: int = 0
) -> StageFootprint:
    """Footprint of an ONNX StageSpec (validated: `onnx_config` and paths filled) at `n_ctx`."""
    config, folder = spec.onnx_config, Path(spec.model_path).parent
    layers, kv_heads, head_dim = config["n_layer"], config["n_head_kv"], config["head_dim"]
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    quant = config.get("quant", "fp32")
    weights = file_bytes(Path(spec.model_path))
    if config.get("embed"):
        weights += file_bytes(folder / config["embed"])
    kv = 2 * 2 * layers * kv_heads * head_dim * n_ctx * F32
    chunk = min(PREFILL_CHUNK, n_ctx)
    heads = max(kv_heads, hidden // head_dim)
    logit_copies = 1 + (INT8_LOGIT_COPIES if quant == "int8" else 0)
    compute = (
        chunk * F32 * (logit_copies * vocab + HIDDEN_COPIES * hidden + heads * n_ctx)
        + ORT_FIXED_BYTES
    )
    footprint = StageFootprint(
        role=spec.role,
        n_ctx=n_ctx,
        kv_type=kv_type,
        weights_bytes=weights,
        repack_bytes=int(weights * (RESIDENT_PER_FILE_BYTE.get(quant, 2.08) - 1)),
        kv_bytes=kv,
        compute_bytes=compute,
    )
    if spec.mmproj_path is None:
        return footprint
    footprint.image_tokens = vision_shape(config).max_tokens
    resident = int(file_bytes(Path(spec.mmproj_path)) * RESIDENT_PER_FILE_BYTE.get(quant, 2.08))
    footprint.mmproj_bytes = resident + image_bytes(config["vision"], hidden)
    return footprint


def image_bytes(vision: dict, hidden: int) -> int:
    """The largest picture's buffers: every normalised view, every view's features, the packed
    embeddings (and their copy in the prompt), and one VIEW_BATCH of the encoder's activations
    (hidden states, the MLP's up projection, one attention score matrix per head, per patch)."""
    if vision.get("kind") in PATCH_KINDS:
        return _patch_image_bytes(vision, hidden)
    tile = int(vision.get("tile", 384))
    views, patches, per_view = _views(vision)
    width = int(vision.get("vision_hidden", SIGLIP["hidden"]))
    ff = int(vision.get("vision_intermediate", SIGLIP["intermediate"]))
    heads = int(vision.get("vision_heads", SIGLIP["heads"]))
    batch = min(VIEW_BATCH, views)
    activations = batch * patches * F32 * (HIDDEN_COPIES * width + ff + heads * patches)
    packed = vision_shape({"vision": vision}).max_tokens * hidden * F32 * 2
    return views * F32 * (3 * tile * tile + per_view * hidden) + activations + packed


def _patch_image_bytes(vision: dict, hidden: int) -> int:
    """The largest Qwen2-VL picture, encoded in one call: its patches (C·T·P·P floats each) and
    their normalised frames, the rotary cos/sin tables, a block's activations over every patch
    with full attention's score matrices (heads x patches², ATTENTION_COPIES of them), and the
    merged embeddings (and their copy in the prompt); Qwen2.5-VL adds its window mask
    (patches²)."""
    patch, merge, patches = _patch_bounds(vision)
    width = int(vision["vision_hidden"])
    heads, ff = int(vision["vision_heads"]), int(vision["vision_intermediate"])
    pixels = 2 * patches * 3 * int(vision["temporal_patch_size"]) * patch * patch * F32
    rotary = 2 * patches * (width // heads) * F32
    mask = patches**2 * F32 if vision.get("window_size") else 0
    attention = ATTENTION_COPIES * heads * patches**2 * F32 + mask
    activations = patches * F32 * (HIDDEN_COPIES * width + ff) + attention
    return pixels + rotary + activations + 2 * (patches // (merge * merge)) * hidden * F32
