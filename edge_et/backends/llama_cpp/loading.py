"""Opening llama.cpp's two halves: the text model (`Llama`) and the mmproj (libmtmd), with
the image-path settings of `edge_et.backends.llama_cpp.settings`."""

from __future__ import annotations

import os

import llama_cpp
import llama_cpp.mtmd_cpp as mtmd

from edge_et.backends.llama_cpp import log as llama_log
from edge_et.backends.llama_cpp.settings import (  # noqa: F401  (re-exported)
    KV_TYPES,
    VISION_FLASH,
    PrefillSettings,
    default_threads,
)
from edge_et.errors import BundleError, InputError, ModelError


def load_text(
    path: str,
    n_ctx: int,
    n_threads: int | None,
    n_gpu_layers: int,
    kv_type: str | None,
    settings: PrefillSettings,
) -> llama_cpp.Llama:
    """The language model, or ModelError with llama.cpp's own reason."""
    threads = n_threads or default_threads()
    if kv_type not in KV_TYPES:
        raise InputError(f"unknown KV cache type {kv_type!r}; choose one of: f16, q8_0")
    quantized_kv = KV_TYPES[kv_type] is not None
    kv = {"type_k": KV_TYPES[kv_type], "type_v": KV_TYPES[kv_type]} if quantized_kv else {}
    n_batch = min(settings.n_batch, n_ctx)
    llama_log.clear()
    try:
        return llama_cpp.Llama(
            model_path=path,
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=n_gpu_layers,
            n_batch=n_batch,
            n_ubatch=min(settings.n_ubatch, n_batch),
            # A quantized V cache needs flash attention in llama.cpp.
            flash_attn=settings.flash_attn or quantized_kv,
            verbose=False,
            **kv,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        reason = llama_log.last_error() or str(exc)
        raise ModelError(f"llama.cpp cannot load '{os.path.basename(path)}': {reason}") from None


def load_mmproj(
    path: str,
    llm: llama_cpp.Llama,
    *,
    use_gpu: bool,
    image_max_tokens: int | None,
    settings: PrefillSettings,
):
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
        raise ModelError(
            f"libmtmd cannot load mmproj '{os.path.basename(path)}' with this model: {reason}"
        )
    if not mtmd.mtmd_support_vision(ctx):
        mtmd.mtmd_free(ctx)
        raise BundleError(f"mmproj '{os.path.basename(path)}' has no vision support")
    return ctx
