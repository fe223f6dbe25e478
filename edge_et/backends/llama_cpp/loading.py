"""Opening llama.cpp's two halves: the text model (`Llama`) and the mmproj (libmtmd).

`PrefillSettings` are the knobs of a vision-language model's image path that llama.cpp leaves
at defaults: the language model's batch sizes and flash attention for the image-token
prefill, and the vision encoder's flash attention and threads. `edge_et.runtime.image_tuning`
chooses them by measurement per device and keeps them in the speed profile; absent that,
`PrefillSettings()` is llama-cpp-python's defaults, what edge-et always ran with.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

import llama_cpp
import llama_cpp.mtmd_cpp as mtmd

from edge_et.backends.llama_cpp import log as llama_log
from edge_et.errors import BundleError, InputError, ModelError

# KV cache element types by name; None keeps llama.cpp's default (f16).
KV_TYPES = {None: None, "f16": None, "q8_0": 8}  # 8 = GGML_TYPE_Q8_0
VISION_FLASH = {"auto": -1, "off": 0, "on": 1}     # mtmd_context_params.flash_attn_type


@dataclass(frozen=True)
class PrefillSettings:
    """Image-path settings of one model. Defaults: llama-cpp-python's, as edge-et ran before."""

    n_batch: int = 512           # tokens per llama_decode call (image embeddings included)
    n_ubatch: int = 512          # tokens per compute graph inside one call
    flash_attn: bool = False     # the language model's attention
    vision_flash: str = "auto"   # the vision encoder's attention: auto | off | on
    vision_threads: int | None = None  # None: the language model's threads

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> PrefillSettings:
        """From a speed profile; unknown keys (a newer edge-et's) are ignored."""
        if not isinstance(data, dict):
            raise ValueError(f"invalid prefill settings {data!r}")
        known = {f.name for f in fields(cls)}
        settings = cls(**{k: v for k, v in data.items() if k in known})
        if settings.vision_flash not in VISION_FLASH or settings.n_ubatch > settings.n_batch:
            raise ValueError(f"invalid prefill settings {data}")
        return settings

    def label(self) -> str:
        threads = self.vision_threads or "all"
        return (f"batch {self.n_batch}/{self.n_ubatch}, fa {'on' if self.flash_attn else 'off'}, "
                f"vision fa {self.vision_flash}, vision threads {threads}")


def default_threads() -> int:
    """All cores this process may use: decode on small devices is bandwidth-bound anyway."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)


def load_text(path: str, n_ctx: int, n_threads: int | None, n_gpu_layers: int,
              kv_type: str | None, settings: PrefillSettings) -> llama_cpp.Llama:
    """The language model, or ModelError with llama.cpp's own reason."""
    threads = n_threads or default_threads()
    if kv_type not in KV_TYPES:
        raise InputError(f"unknown KV cache type {kv_type!r}; choose one of: f16, q8_0")
    quantized_kv = KV_TYPES[kv_type] is not None
    kv = {"type_k": KV_TYPES[kv_type], "type_v": KV_TYPES[kv_type]} if quantized_kv else {}
    n_batch = min(settings.n_batch, n_ctx)
    llama_log.clear()
    try:
        return llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=threads,
                               n_threads_batch=threads, n_gpu_layers=n_gpu_layers,
                               n_batch=n_batch, n_ubatch=min(settings.n_ubatch, n_batch),
                               # A quantized V cache needs flash attention in llama.cpp.
                               flash_attn=settings.flash_attn or quantized_kv,
                               verbose=False, **kv)
    except (ValueError, RuntimeError, OSError) as exc:
        reason = llama_log.last_error() or str(exc)
        raise ModelError(f"llama.cpp cannot load '{os.path.basename(path)}': {reason}") from None


def load_mmproj(path: str, llm: llama_cpp.Llama, *, use_gpu: bool, image_max_tokens: int | None,
                settings: PrefillSettings):
    """A libmtmd context for `llm` (free it with mtmd_free), or ModelError / BundleError."""
    params = mtmd.mtmd_context_params_default()
    params.use_gpu = use_gpu
    if image_max_tokens:
        # The memory plan's bound on one image: mtmd downscales larger pictures to it.
        params.image_max_tokens = image_max_tokens
    params.print_timings = False
    params.n_threads = settings.vision_threads or llm.n_threads
    params.flash_attn_type = VISION_FLASH[settings.vision_flash]
    llama_log.clear()
    ctx = mtmd.mtmd_init_from_file(path.encode(), llm.model, params)
    if not ctx:
        reason = llama_log.last_error() or "unknown error"
        raise ModelError(f"libmtmd cannot load mmproj '{os.path.basename(path)}' "
                         f"with this model: {reason}")
    if not mtmd.mtmd_support_vision(ctx):
        mtmd.mtmd_free(ctx)
        raise BundleError(f"mmproj '{os.path.basename(path)}' has no vision support")
    return ctx
