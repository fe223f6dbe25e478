"""The bare baseline of a llama.cpp stage: the same token counts through plain llama-cpp-python
calls, beside the edge-et run (edge_et/backends/onnx/bare.py is the ONNX Runtime one).

It runs on the very `Llama` (and mtmd context) that edge-et loaded: the same weights in the same
memory and the same KV cache, so the only difference measured is the calling layer (templates,
the token loop, budget forcing, stats), which is what edge-et adds.
"""

from __future__ import annotations

import ctypes
import time
from contextlib import ExitStack

import numpy as np

from edge_et.backends.stage_run import StageRequest, StageRun
from edge_et.core.decoding import Sampling
from edge_et.core.images import LoadedImage


def bare_comparable(model, request: StageRequest) -> bool:
    """Whether bare mtmd calls feed the same image tokens as edge-et.

    LLaVA-OneVision images are packed by edge-et (anyres views, newline rows); mtmd alone
    would feed one resized view, a different amount of work.
    """
    return request.image is None or not model.packs_images


def bare_stage(model, prompt: str, request: StageRequest) -> StageRun:
    """The same token counts through plain llama-cpp-python: `Llama.eval` + a llama.cpp
    sampler chain (and `mtmd_helper_eval_chunks` for the image), no edge-et code."""
    import llama_cpp

    llm = model.llama  # the same loaded weights and KV cache as the edge-et run
    started = time.perf_counter()
    llm.reset()
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
    add_bos = not (model.bos_text and prompt.startswith(model.bos_text))
    if request.image is not None:
        n_prompt = _bare_image_prompt(model.mtmd_context, llm, prompt, request.image, add_bos)
    else:
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)
        llm.eval(tokens)
        n_prompt = len(tokens)
    run = StageRun(prompt_tokens=n_prompt, requested=request.requested)
    _bare_decode(llm, request.sampling, request.requested, run, started)
    return run


def _bare_image_prompt(mctx, llm, prompt: str, image: LoadedImage, add_bos: bool) -> int:
    import llama_cpp
    import llama_cpp.mtmd_cpp as mtmd

    with ExitStack() as scope:
        rgb = np.ascontiguousarray(image.rgb, dtype=np.uint8)
        bitmap = mtmd.mtmd_bitmap_init(
            image.width, image.height, rgb.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        )
        scope.callback(mtmd.mtmd_bitmap_free, bitmap)
        chunks = mtmd.mtmd_input_chunks_init()
        scope.callback(mtmd.mtmd_input_chunks_free, chunks)
        text = mtmd.mtmd_input_text()
        encoded = prompt.encode("utf-8")
        text.text, text.text_len, text.add_special, text.parse_special = (
            encoded,
            len(encoded),
            add_bos,
            True,
        )
        bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
        if mtmd.mtmd_tokenize(mctx, chunks, ctypes.byref(text), bitmaps, 1) != 0:
            raise RuntimeError("mtmd_tokenize failed in the bare baseline")
        new_n_past = llama_cpp.llama_pos(0)
        if (
            mtmd.mtmd_helper_eval_chunks(
                mctx, llm.ctx, chunks, 0, 0, llm.n_batch, True, ctypes.byref(new_n_past)
            )
            != 0
        ):
            raise RuntimeError("mtmd_helper_eval_chunks failed in the bare baseline")
        llm.n_tokens = new_n_past.value
        return int(mtmd.mtmd_helper_get_n_tokens(chunks))


def _bare_decode(llm, sampling: Sampling, n_tokens: int, run: StageRun, started: float) -> None:
    """Sample `n_tokens`, feeding each but the last back; EOS is simply never checked."""
    import llama_cpp

    chain = bare_sampler(sampling, n_vocab=llm.n_vocab())
    first_at = None
    try:
        for i in range(n_tokens):
            token = llama_cpp.llama_sampler_sample(chain, llm.ctx, -1)
            first_at = first_at or time.perf_counter()
            run.tokens += 1
            if i == n_tokens - 1:
                break
            if llm.n_tokens + 1 > llm.n_ctx():
                run.stop_reason = "context_full"
                break
            llm.eval([token])
    finally:
        llama_cpp.llama_sampler_free(chain)
    ended = time.perf_counter()
    first_at = first_at or ended
    run.ttft_s, run.decode_s, run.e2e_s = first_at - started, ended - first_at, ended - started
    run.stop_reason = run.stop_reason or "max_tokens"


def bare_sampler(sampling: Sampling, *, n_vocab: int):
    """llama.cpp's sampler chain for `sampling` (repeat penalty, temperature, top-k, top-p, min-p,
    seeded dist), as LlamaCppModel builds it."""
    import llama_cpp

    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    parts = []
    if sampling.repeat_penalty != 1.0:
        # 0.3.36's vendored llama.cpp still takes the vocabulary size first.
        parts.append(
            llama_cpp.llama_sampler_init_penalties(n_vocab, 64, sampling.repeat_penalty, 0.0, 0.0)
        )
    if sampling.temperature <= 0:
        parts.append(llama_cpp.llama_sampler_init_greedy())
    else:
        parts.append(llama_cpp.llama_sampler_init_temp(sampling.temperature))
        if sampling.top_k > 0:
            parts.append(llama_cpp.llama_sampler_init_top_k(sampling.top_k))
        if sampling.top_p < 1.0:
            parts.append(llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
        if sampling.min_p > 0:
            parts.append(llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
        parts.append(llama_cpp.llama_sampler_init_dist(sampling.seed & 0xFFFFFFFF))
    for part in parts:
        llama_cpp.llama_sampler_chain_add(chain, part)
    return chain
