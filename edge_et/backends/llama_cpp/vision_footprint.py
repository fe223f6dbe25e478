"""Memory of a perception stage's vision side (libmtmd + its mmproj), from the mmproj header.

How many tokens an image becomes depends on the projector family, as clip.cpp decides:
dynamic-resolution projectors (Qwen2/2.5/3-VL) take any size between limits, so the plan
fixes the largest image it allows (and the backend should pass that cap to libmtmd as
`image_max_tokens`, so the bound holds); fixed-size projectors always make the same count;
Idefics3 / SmolVLM tile a large image. The bytes then scale with the encoder's input pixels.
"""

from __future__ import annotations

from edge_et.formats.gguf import GGUFInfo
from edge_et.memory.footprint import VisionShape
from edge_et.memory.probes import MiB

F32 = 4
# Projector families with dynamic resolution: (default max image tokens, warmup tokens), as
# clip.cpp sets them (set_limit_image_tokens(8, 4096), set_warmup_n_tokens(46*46)).
DYNAMIC_PROJECTORS = {
    "qwen2vl_merger": (4096, 46 * 46),
    "qwen2.5vl_merger": (4096, 46 * 46),
    "qwen3vl_merger": (4096, 46 * 46),
}
MIN_DYNAMIC_TOKENS = 8
# Measured (least squares over 8 runs: two Qwen2-VL encoders, 0.8-2.9 Mpx images, peak RSS
# minus every other term): bytes per encoder-input pixel — the runtime's decoded RGB copies,
# libmtmd's bitmap and f32 preprocess copies, the patch input — and an intercept
# (allocator and thread-pool slack of the encode).
IMAGE_BYTES_PER_PIXEL = 30
ENCODE_FIXED_BYTES = 30 * MiB
# Derived: vision activations alive per patch with flash attention (mtmd's choice on CPU):
# the residual stream, its norm and the FFN's up projection, in f32.
VISION_EMBD_FLOATS, VISION_FF_FLOATS = 2, 1
# Derived: libmtmd's load builds two dummy f32 RGB images of the warmup size (freed after);
# measured 38 MiB for Qwen2-VL's 1288x1288 warmup, as 2 x 3 x 4 bytes per pixel predicts.
WARMUP_BYTES_PER_PIXEL = 2 * 3 * F32
# Measured: libmtmd's context and code pages beyond the projector weights.
MTMD_FIXED_BYTES = 4 * MiB


def gguf_vision_shape(info: GGUFInfo) -> VisionShape:
    """The vision shape of an mmproj, as clip.cpp sizes its images."""
    meta = info.metadata
    projector = str(meta.get("clip.projector_type") or meta.get("clip.vision.projector_type") or "")
    image_size = int(meta.get("clip.vision.image_size", 224))
    patch = int(meta.get("clip.vision.patch_size", 14))
    merge = int(
        meta.get("clip.vision.spatial_merge_size")
        or meta.get("clip.vision.projector.scale_factor")
        or (2 if projector in DYNAMIC_PROJECTORS else 1)
    )
    per_tile = max(image_size // patch // merge, 1) ** 2
    if projector in DYNAMIC_PROJECTORS:
        max_tokens, warmup = DYNAMIC_PROJECTORS[projector]
        max_pixels = meta.get("clip.vision.image_max_pixels")
        if max_pixels:
            max_tokens = int(max_pixels) // (patch * merge) ** 2
    elif meta.get("edge_et.image_packing") == "llava_onevision":
        # edge-et's own anyres packing (backends/llama_cpp/llava_ov.py): a base view plus a grid
        # shrunk to at most max_tiles views (x1.21 in area), one newline per feature row.
        aspect = str(meta.get("edge_et.llava_ov.vision_aspect_ratio", "anyres_max_9"))
        max_tiles = int(aspect.removeprefix("anyres_max_") or 9)
        side = image_size // patch
        grid = int(max_tiles * 1.21 * side * side)
        max_tokens, warmup = per_tile + grid + int(grid**0.5) + 1, per_tile
    elif projector == "idefics3":
        # llava-uhd slicing: a grid of image_size tiles over the longest edge, plus an overview.
        longest = int(meta.get("clip.vision.preproc_image_size", image_size))
        side = -(-longest // image_size)
        max_tokens, warmup = (side * side + (side > 1)) * per_tile, per_tile
    else:
        max_tokens = warmup = per_tile
    return VisionShape(
        projector=projector,
        image_size=image_size,
        patch_size=patch,
        n_embd=int(meta.get("clip.vision.embedding_length", 0)),
        n_ff=int(meta.get("clip.vision.feed_forward_length", 0)),
        merge=merge,
        max_tokens=max_tokens,
        warmup_tokens=warmup,
        dynamic=projector in DYNAMIC_PROJECTORS,
    )


def image_tokens_for(vision: VisionShape, n_ctx: int, text_reserve: int) -> int:
    """The largest image (in tokens) the plan allows at `n_ctx`, leaving `text_reserve` tokens.

    Fixed-size and tiling projectors make their own count whatever the context.
    """
    if not vision.dynamic:
        return vision.max_tokens
    return max(MIN_DYNAMIC_TOKENS, min(vision.max_tokens, n_ctx - text_reserve))


def vision_bytes(vision: VisionShape, tokens: int, text_n_embd: int) -> int:
    """Resident bytes of encoding and feeding one image of `tokens` tokens (projector weights excluded).

    pixels = tokens × (patch × merge)², patches = tokens × merge²
    encode = pixels × IMAGE_BYTES_PER_PIXEL + ENCODE_FIXED_BYTES           (measured)
           + patches × 4 × (2 × n_embd_v + n_ff_v)                          (derived)
    embd   = tokens × n_embd_text × 4 × 2         (mtmd's output + the batch that feeds it)
    total  = max(encode, the load-time warmup transient) + embd + MTMD_FIXED_BYTES
    """
    pixels = tokens * vision.pixels_per_token
    patches = tokens * vision.merge**2
    acts = patches * F32 * (VISION_EMBD_FLOATS * vision.n_embd + VISION_FF_FLOATS * vision.n_ff)
    encode = pixels * IMAGE_BYTES_PER_PIXEL + ENCODE_FIXED_BYTES + acts
    warmup = vision.warmup_tokens * vision.pixels_per_token * WARMUP_BYTES_PER_PIXEL
    embd = tokens * text_n_embd * F32 * 2
    return max(encode, warmup) + embd + MTMD_FIXED_BYTES
