"""How much memory a stage will take, read from GGUF headers alone (no model is loaded).

The numbers follow what llama.cpp (llama-cpp-python 0.3.36, CPU) really allocates and
*touches*, because resident memory is what runs a device out of memory:

- weights: the GGUF is mmapped with MAP_POPULATE, so the whole file becomes resident;
  tensors that the CPU backend repacks (Q4_0/Q4_K/IQ4_NL… on AVX2 or NEON) get a second,
  anonymous copy while the mapped pages stay resident too.
- KV cache: allocated and zeroed at load, so fully resident: per layer,
  cells × n_head_kv × (key_length + value_length) × bytes per element.
- compute: the worst request the plan allows (a full context, a prompt ubatch at its end,
  one output row; see `compute_bytes`). The reserved buffer is larger (it assumes logits for
  every ubatch token) but only the pages a graph writes become resident.
- mmproj (perception): its weights (read into memory), the vision encoder's activations for
  the largest image the plan allows, the image copies on the way, the output embeddings.

Constants marked "measured" were fitted on Linux x86_64 (benchmarks/memory_estimates.py
records estimate vs measured peak RSS per stage); the formulas around them are derived from
llama.cpp's graphs. Recurrent/hybrid and MLA (DeepSeek) caches are not modelled.
"""

from __future__ import annotations

import math
import mmap
import platform
from dataclasses import dataclass, replace

from edge_et.backends.llama_cpp.vision_footprint import (
    gguf_vision_shape,
    image_tokens_for,
    vision_bytes,
)
from edge_et.core.host import cpu_flags
from edge_et.errors import BundleError
from edge_et.formats.gguf import ARRAY_TYPE, SCALAR_TYPES, GGUFInfo, GGUFReader
from edge_et.memory.footprint import StageFootprint
from edge_et.memory.probes import MiB

KV_TYPES = {"f16": (1, 2), "q8_0": (32, 34)}  # elements, bytes per block
KV_GGML_TYPE = {"f16": 1, "q8_0": 8}  # llama_cpp type_k / type_v values
KV_PAD = 256  # llama.cpp pads n_ctx and SWA caches to 256 cells
F32 = 4

# Measured: llama.cpp context bookkeeping, graph metadata and thread pools (tiny models).
CONTEXT_FIXED_BYTES = int(5.5 * MiB)
# Measured: tokenizer tables in llama.cpp plus llama-cpp-python's per-token arrays.
VOCAB_BYTES_PER_TOKEN = 320
# Repacked weight types (ggml-cpu repack.cpp: ggml_repack_get_optimal_repack_type).
_REPACK_X86_AVX2 = frozenset({2, 12, 20, 39})  # Q4_0, Q4_K, IQ4_NL, MXFP4
_REPACK_X86_AVX512 = frozenset({10})  # + Q2_K
_REPACK_ARM_DOTPROD = frozenset({2, 12, 13, 14, 20, 39})  # + Q5_K, Q6_K


def _pad(value: int, to: int) -> int:
    return -(-value // to) * to


@dataclass(frozen=True)
class TextShape:
    """The hyperparameters of a language model that size its memory (per layer where they vary)."""

    arch: str
    n_layer: int
    n_embd: int
    n_vocab: int
    n_head: tuple[int, ...]
    n_head_kv: tuple[int, ...]
    n_ff: tuple[int, ...]
    key_length: int
    value_length: int
    key_length_swa: int
    value_length_swa: int
    n_swa: int = 0
    swa_layers: tuple[bool, ...] = ()

    def is_swa(self, layer: int) -> bool:
        return self.n_swa > 0 and layer < len(self.swa_layers) and self.swa_layers[layer]

    @classmethod
    def from_gguf(cls, info: GGUFInfo) -> TextShape:
        """Read the arch-scoped keys; per-layer arrays (head_count_kv…) are honoured."""
        arrays = read_numeric_arrays(info, [f"{info.architecture}.{k}" for k in _LAYER_KEYS])
        value = lambda key, default=0: _arch(info, arrays, key, default)  # noqa: E731
        n_layer = int(value("block_count"))
        per_layer = lambda key, default: _per_layer(value(key, default), n_layer)  # noqa: E731
        n_embd = int(value("embedding_length"))
        if n_layer <= 0 or n_embd <= 0:
            raise BundleError(
                f"cannot plan memory for '{info.path.name}': its header lacks "
                f"{info.architecture}.block_count or .embedding_length"
            )
        n_head = per_layer("attention.head_count", 1)
        head_dim = n_embd // max(max(n_head), 1)
        key_length = int(value("attention.key_length", head_dim))
        value_length = int(value("attention.value_length", head_dim))
        n_swa = int(value("attention.sliding_window", 0))
        return cls(
            arch=info.architecture,
            n_layer=n_layer,
            n_embd=n_embd,
            n_vocab=int(value("vocab_size", 0) or info.vocab_size or 0),
            n_head=n_head,
            n_head_kv=per_layer("attention.head_count_kv", n_head),
            n_ff=per_layer("feed_forward_length", 4 * n_embd),
            key_length=key_length,
            value_length=value_length,
            key_length_swa=int(value("attention.key_length_swa", key_length)),
            value_length_swa=int(value("attention.value_length_swa", value_length)),
            n_swa=n_swa,
            swa_layers=_swa_layers(
                info.architecture, n_layer, n_swa, value("attention.sliding_window_pattern", None)
            ),
        )


_LAYER_KEYS = (
    "attention.head_count",
    "attention.head_count_kv",
    "feed_forward_length",
    "attention.sliding_window_pattern",
)
# llama.cpp's default SWA patterns per architecture (models/*.cpp: load_swa_pattern(ml, n)):
# every n-th layer is full attention, the others slide. (n, dense_first)
SWA_PATTERNS = {
    "gemma2": (2, False),
    "gemma3": (6, False),
    "gemma3n": (5, False),
    "gemma-embedding": (6, False),
    "cohere2": (4, False),
    "llama4": (4, False),
    "exaone4": (4, False),
    "olmo2": (4, False),
    "gpt-oss": (2, False),
    "plamo3": (8, False),
    "smallthinker": (4, True),
}


def _arch(info: GGUFInfo, arrays: dict, key: str, default):
    full = f"{info.architecture}.{key}"
    if full in arrays:
        return arrays[full]
    return info.metadata.get(full, default)


def _per_layer(value, n_layer: int) -> tuple[int, ...]:
    if isinstance(value, tuple):
        return tuple(int(v) for v in value[:n_layer]) + (int(value[-1]),) * (n_layer - len(value))
    return (int(value),) * n_layer


def _swa_layers(arch: str, n_layer: int, n_swa: int, pattern) -> tuple[bool, ...]:
    """Which layers use the sliding window, as llama_hparams::set_swa_pattern decides."""
    if n_swa <= 0:
        return ()
    if isinstance(pattern, tuple):  # an explicit per-layer array of bools
        return tuple(bool(p) for p in pattern[:n_layer])
    every, dense_first = SWA_PATTERNS.get(arch, (0, False))
    every = int(pattern) if isinstance(pattern, int) else every
    if every <= 0:
        return (True,) * n_layer
    if dense_first:
        return tuple(i % every != 0 for i in range(n_layer))
    return tuple(i % every < every - 1 for i in range(n_layer))


def read_numeric_arrays(info: GGUFInfo, keys: list[str]) -> dict[str, tuple]:
    """Numeric arrays of `keys` (≤ 4096 items) from the header; gguf_meta skips arrays.

    Only re-reads the file when one of the keys is an array there (rare: OpenELM,
    DeciLM-style models with per-layer head counts, explicit SWA patterns).
    """
    wanted = {k for k in keys if k in info.array_lengths}
    if not wanted:
        return {}
    found: dict[str, tuple] = {}
    with (
        open(info.path, "rb") as handle,
        mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf,
    ):
        reader = GGUFReader(buf)
        reader.pos = 16
        n_kv = reader.unpack("<Q")
        for _ in range(n_kv):
            key, kind = reader.string(), reader.unpack("<I")
            if kind != ARRAY_TYPE:
                reader.value(kind)
                continue
            item, count = reader.unpack("<I"), reader.unpack("<Q")
            if key in wanted and item in SCALAR_TYPES and count <= 4096:
                found[key] = tuple(reader.unpack(SCALAR_TYPES[item]) for _ in range(count))
            else:
                reader.skip_array(item, count)
    return found


# -- text model ------------------------------------------------------------------------------


def layer_cells(
    shape: TextShape, n_ctx: int, *, n_ubatch: int = 512, swa_full: bool = True
) -> tuple[int, ...]:
    """KV cells per layer: the padded context, or n_swa + n_ubatch (padded) for SWA layers
    unless `swa_full`, which is llama.cpp's default (llama-cpp-python passes it through)."""
    full = _pad(n_ctx, KV_PAD)
    window = min(full, _pad(shape.n_swa + n_ubatch, KV_PAD))
    return tuple(window if shape.is_swa(i) and not swa_full else full for i in range(shape.n_layer))


def kv_bytes(
    shape: TextShape,
    n_ctx: int,
    kv_type: str = "f16",
    *,
    n_ubatch: int = 512,
    swa_full: bool = True,
) -> int:
    """KV cache bytes: Σ layers cells × n_head_kv × (key_length + value_length) × bytes/element."""
    block, size = KV_TYPES[kv_type]
    total = 0
    for layer, cells in enumerate(layer_cells(shape, n_ctx, n_ubatch=n_ubatch, swa_full=swa_full)):
        swa = shape.is_swa(layer)
        k_len = shape.key_length_swa if swa else shape.key_length
        v_len = shape.value_length_swa if swa else shape.value_length
        total += cells * (shape.n_head_kv[layer] * (k_len + v_len) // block) * size
    return total


def compute_bytes(
    shape: TextShape,
    n_ctx: int,
    *,
    n_ubatch: int = 512,
    flash_attn: bool = False,
    reserved: bool = False,
    swa_full: bool = True,
) -> int:
    """Compute memory of the worst ubatch: T = min(n_ubatch, n_ctx) tokens at the end of a full context.

    mask   n_kv × T × 4          the KQ mask, a graph input alive through the last layer
                                 (one per cache: full-context layers and SWA layers)
    attn   n_kv × T × n_head × 6 without flash attention: KQ in f32 (soft_max in place) and
                                 its f16 copy in the CPU work buffer for the V product
                                 (× 4 when `reserved`: the work buffer is not in llama.cpp's)
    qkv    T × 4 × (n_embd + n_head·k + 2·n_head_kv·v)
    ffn    T × 4 × (3·n_ff + n_embd)   gate, up, their product (reuses the attention memory)
    out    n_vocab × 4 × rows          logits: 1 row resident; `reserved` counts T rows, as
                                       llama.cpp's reservation (and a GPU's VRAM) does
    resid  T × 4 × 2·n_embd            residual stream and its norm
    total = max(mask + max(attn + qkv, ffn), out) + resid
    `reserved` matches llama.cpp's logged CPU compute buffer within 2% (SmolLM2, 512–8192).
    """
    tokens = min(n_ubatch, n_ctx)
    cells = layer_cells(shape, n_ctx, n_ubatch=n_ubatch, swa_full=swa_full)
    n_kv = max(cells)
    masks = {("swa" if shape.is_swa(i) else "full"): c for i, c in enumerate(cells)}
    n_head, n_head_kv, n_ff = max(shape.n_head), max(shape.n_head_kv), max(shape.n_ff)
    mask = sum(masks.values()) * tokens * F32
    attn = 0 if flash_attn else n_kv * tokens * n_head * (F32 if reserved else F32 + 2)
    qkv = (
        tokens
        * F32
        * (shape.n_embd + n_head * shape.key_length + 2 * n_head_kv * shape.value_length)
    )
    ffn = tokens * F32 * (3 * n_ff + shape.n_embd)
    out = shape.n_vocab * F32 * (tokens if reserved else 1)
    resid = tokens * F32 * 2 * shape.n_embd
    return max(mask + max(attn + qkv, ffn), out) + resid


def overhead_bytes(info: GGUFInfo, shape: TextShape) -> int:
    """Non-tensor resident bytes: the mapped header (vocabulary strings), context, tokenizer tables."""
    header = max(info.size_bytes - info.tensor_bytes, 0)
    return header + CONTEXT_FIXED_BYTES + VOCAB_BYTES_PER_TOKEN * shape.n_vocab


def cpu_repack_types(
    machine: str | None = None, flags: frozenset[str] | None = None
) -> frozenset[int]:
    """ggml types the CPU backend repacks into a second copy on this machine."""
    machine = (machine or platform.machine()).lower()
    if flags is None:
        flags = cpu_flags()
    if machine in ("x86_64", "amd64"):
        types = _REPACK_X86_AVX2 if "avx2" in flags else frozenset()
        return types | (_REPACK_X86_AVX512 if "avx512f" in flags else frozenset())
    if machine in ("arm64", "aarch64"):
        return _REPACK_ARM_DOTPROD | (frozenset({8}) if "i8mm" in flags else frozenset())
    return frozenset()


def repack_bytes(info: GGUFInfo, types: frozenset[int]) -> int:
    """Bytes of the tensors the CPU backend will repack (a second copy beside the mapped file).

    The input embedding is never repacked: its get_rows has no repacked kernel.
    """
    total = 0
    for tensor in info.tensors:
        if (
            tensor.ggml_type in types
            and len(tensor.shape) >= 2
            and tensor.shape[1] % 8 == 0
            and not tensor.name.startswith("token_embd")
        ):
            total += tensor.nbytes or 0
    return total


def layer_bytes(info: GGUFInfo, n_layer: int) -> tuple[tuple[int, ...], int]:
    """Weight bytes per repeating layer (`blk.N.`), and of the output layer (for GPU offload).

    A tied output (no `output.weight`) is duplicated onto the GPU from `token_embd`.
    """
    per_layer = [0] * n_layer
    named = {t.name: t.nbytes or 0 for t in info.tensors}
    for tensor in info.tensors:
        if tensor.name.startswith("blk."):
            index = int(tensor.name.split(".")[1])
            if index < n_layer:
                per_layer[index] += tensor.nbytes or 0
    output = named.get("output.weight", named.get("token_embd.weight", 0))
    output += named.get("output_norm.weight", 0)
    return tuple(per_layer), output


# -- the stage footprint ---------------------------------------------------------------------


def text_footprint(
    info: GGUFInfo,
    role: str,
    n_ctx: int,
    kv_type: str = "f16",
    *,
    n_ubatch: int = 512,
    repack_types: frozenset[int] = frozenset(),
    swa_full: bool = True,
) -> StageFootprint:
    """Footprint of a language model at `n_ctx`; a q8_0 cache implies flash attention
    (llama.cpp refuses a quantized V cache without it)."""
    shape = TextShape.from_gguf(info)
    flash = kv_type != "f16"
    layers, output = layer_bytes(info, shape.n_layer)
    return StageFootprint(
        role=role,
        n_ctx=_pad(n_ctx, KV_PAD),
        kv_type=kv_type,
        flash_attn=flash,
        weights_bytes=info.tensor_bytes,
        repack_bytes=repack_bytes(info, repack_types),
        kv_bytes=kv_bytes(shape, n_ctx, kv_type, n_ubatch=n_ubatch, swa_full=swa_full),
        compute_bytes=compute_bytes(
            shape, n_ctx, n_ubatch=n_ubatch, flash_attn=flash, swa_full=swa_full
        ),
        overhead_bytes=overhead_bytes(info, shape),
        layer_weights=layers,
        n_params=sum(math.prod(t.shape) for t in info.tensors),
        output_weights=output,
        reserved_compute_bytes=compute_bytes(
            shape, n_ctx, n_ubatch=n_ubatch, flash_attn=flash, reserved=True, swa_full=swa_full
        ),
    )


def with_vision(
    footprint: StageFootprint, mmproj: GGUFInfo, text: GGUFInfo, text_reserve: int
) -> StageFootprint:
    """`footprint` plus the projector: the largest image that leaves `text_reserve` tokens."""
    vision = gguf_vision_shape(mmproj)
    tokens = image_tokens_for(vision, footprint.n_ctx, text_reserve)
    n_embd = TextShape.from_gguf(text).n_embd
    return replace(
        footprint,
        image_tokens=tokens,
        mmproj_bytes=mmproj.tensor_bytes + vision_bytes(vision, tokens, n_embd),
    )
