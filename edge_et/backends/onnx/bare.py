"""The bare baseline of an ONNX stage: plain `InferenceSession.run` calls on the sessions edge-et
loaded, beside the edge-et run (what edge_et/backends/llama_cpp/bare.py is for llama.cpp).

The loop is what an app developer would write against ONNX Runtime by hand: feed the prompt in
chunks (edge-et's chunk size, so both hold the same logits buffer), then one `run` per token
with the KV outputs fed back as inputs, a draw from the last logits, and no end-of-generation
check. What it leaves out is what edge-et adds: the chat template, `DecoderSession`, the
generation loop with budget forcing and streaming, and the stats. It samples with the same
numpy `Sampler` as edge-et's ONNX backend, as the llama.cpp baseline uses llama.cpp's own chain.

Text stages only: an ONNX image goes through edge-et's numpy preprocessing and packing, which
has no plain-ONNX-Runtime equivalent to compare against.
"""

from __future__ import annotations

import time

import numpy as np

from edge_et.backends.onnx.footprint import PREFILL_CHUNK
from edge_et.backends.onnx.sampling import Sampler
from edge_et.backends.stage_run import StageRequest, StageRun

NO_IMAGE_BASELINE = (
    "no bare run for images: an ONNX image goes through edge-et's own numpy "
    "preprocessing, which plain ONNX Runtime has no equivalent of"
)


def bare_onnx_stage(model, prompt: str, request: StageRequest) -> StageRun:
    """`request.requested` tokens after `prompt` through raw session calls on `model`'s sessions."""
    session = model.decoder_session  # the same loaded graph as the edge-et run
    embed = model.embed_session
    names = {i.name for i in session.get_inputs()}
    past = sorted(
        (n for n in names if n.startswith("past_key_values.")),
        key=lambda n: (int(n.split(".")[1]), n),
    )
    first = next(i for i in session.get_inputs() if i.name == past[0])
    dtype = np.float16 if first.type == "tensor(float16)" else np.float32
    cache = {n: np.zeros((1, int(first.shape[1]), 0, int(first.shape[3])), dtype) for n in past}
    started = time.perf_counter()
    ids = model.prompt_ids(prompt, first=True)
    n_past, logits = 0, None
    for at in range(0, len(ids), PREFILL_CHUNK):
        chunk = ids[at : at + PREFILL_CHUNK]
        logits, n_past = _step(session, embed, names, cache, chunk, n_past)
    prefilled = time.perf_counter()
    run = StageRun(
        prompt_tokens=len(ids), prefill_s=prefilled - started, requested=request.requested
    )
    sampler, first_at = Sampler(request.sampling), None
    for i in range(request.requested):
        token = sampler(logits)
        first_at = first_at or time.perf_counter()
        run.tokens += 1
        if i == request.requested - 1:
            break
        if n_past + 1 > model.n_ctx:
            run.stop_reason = "context_full"
            break
        logits, n_past = _step(session, embed, names, cache, [token], n_past)
    ended = time.perf_counter()
    first_at = first_at or ended
    run.ttft_s, run.decode_s, run.e2e_s = first_at - started, ended - first_at, ended - started
    run.stop_reason = run.stop_reason or "max_tokens"
    return run


def _step(session, embed, names: set[str], cache: dict, ids, n_past: int):
    """One decoder call over `ids` at position `n_past`, `cache` (past name -> array, in layer
    order) updated in place; (last logits, new n_past)."""
    tokens = np.asarray(ids, dtype=np.int64)[None]
    feeds = dict(cache)
    if "inputs_embeds" in names:
        feeds["inputs_embeds"] = embed.run(None, {"input_ids": tokens})[0].astype(np.float32)
        if "input_ids" in names:
            feeds["input_ids"] = np.zeros_like(tokens)
    else:
        feeds["input_ids"] = tokens
    end = n_past + tokens.shape[1]
    if "attention_mask" in names:
        feeds["attention_mask"] = np.ones((1, end), dtype=np.int64)
    if "position_ids" in names:
        feeds["position_ids"] = np.arange(n_past, end, dtype=np.int64)[None]
    past = list(cache)
    outputs = session.run(
        ["logits"] + [n.replace("past_key_values.", "present.") for n in past], feeds
    )
    cache.update(zip(past, outputs[1:]))
    return np.asarray(outputs[0][0, -1], dtype=np.float32), end
