"""A mobile package against the ONNX bundle it came from, and each stage's peak RSS.

Both run in the parity worker's subprocess (kinds "mobile-parity", "mobile-rss" of
export/parity/worker.py), through the runtime itself: the package's `.ort` graphs are what
ships, the source bundle's `.onnx` graphs the reference.

  text    the GGUF check's probe prompts and a chat turn: every position's logits, source vs
          package (the same ids on both sides);
  greedy  up to GREEDY_TOKENS greedy tokens of a chat turn (repeat penalty as in the ONNX check);
  vision  (perception) the packed image embeddings of a test picture, and greedy tokens with it.

Bounds (BOUNDS): the perception stage keeps its precision, so it must match as an fp32 export
matches transformers; the reasoner's bounds are those of its quantization.
"""

from __future__ import annotations

import time

from edge_et.backends.stage_run import StageRequest
from edge_et.bundle.manifest import Bundle
from edge_et.core import prompts
from edge_et.core.chat import render_user_turn
from edge_et.core.decoding import Sampling
from edge_et.core.images import (
    SAMPLE_DESCRIPTION,
    SAMPLE_QUESTION,
    LoadedImage,
    pixel_sha256,
)
from edge_et.memory.probes import current_rss, process_peak_rss
from edge_et.runtime.measure import edge_stage, open_model, reset_peak_rss
from export.parity.gguf import TextThresholds
from export.parity.gguf_text import CHAT_QUESTION, PROBES, compare_logits, summarize
from export.parity.onnx_checks import (
    IMAGE_REQUEST,
    embedding_measures,
    greedy_report,
    onnx_greedy,
    test_picture,
)

# (text bounds, greedy tokens must all agree, image cosine). int4 is blockwise 4-bit weights
# against float ones: looser than int8's (docs/onnx.md), and greedy text is reported only.
BOUNDS = {
    "same": (TextThresholds(1e-3, 2e-3, 1.0), True, 0.9999),
    "int8": (TextThresholds(0.10, 0.10, 0.90), False, 0.99),
    "int4": (TextThresholds(0.30, 0.30, 0.75), False, 0.99),
}
RSS_TOKENS = 32


def _prompts(model) -> list[str]:
    chat = render_user_turn(
        model.chat_template,
        CHAT_QUESTION,
        enable_thinking=None,
        bos_text=model.bos_text,
        eos_text=model.eos_text,
    )
    return [*PROBES, chat]


def _text(source, package) -> dict:
    per_prompt = []
    for text in _prompts(source):
        ids = source.prompt_ids(text, first=True)
        measures = compare_logits(source.score(ids=ids), package.score(ids=ids))
        measures["nonfinite"] = {
            "source": measures["nonfinite"]["hf"],
            "package": measures["nonfinite"].pop("llama_cpp"),
        }
        per_prompt.append(measures)
    return summarize(per_prompt)


def _greedy(source, package, prompt: str, image=None) -> dict:
    report = greedy_report(
        onnx_greedy(source, prompt, image), onnx_greedy(package, prompt, image), 0
    )
    report["source"], report["package"] = report.pop("hf"), report.pop("onnx")
    return report


def _vision(source, package) -> dict:
    image = _picture(60, 100)  # not square: the views are padded or resized
    source.forget_images()
    package.forget_images()
    measures = embedding_measures(source.vision.embed(image)[0], package.vision.embed(image)[0])
    request = render_user_turn(
        source.chat_template,
        source.media_marker + "\n" + IMAGE_REQUEST,
        enable_thinking=None,
        bos_text=source.bos_text,
        eos_text=source.eos_text,
    )
    return {**measures, "greedy": _greedy(source, package, request, image)}


def _open(stage):
    return open_model(stage, 2048, None)


def parity(source: str, package: str, quant: str) -> dict:
    """Per role: measures and the verdict (`passes`, `failures`) against BOUNDS."""
    src, pkg = Bundle.load(source), Bundle.load(package)
    report = {}
    for role in [s.role for s in pkg.stages()]:
        a, b = _open(src.require(role)), _open(pkg.require(role))
        try:
            section = {"text": _text(a, b), "greedy": _greedy(a, b, _prompts(a)[-1])}
            if role == "perception":
                section["vision"] = _vision(a, b)
        finally:
            a.close()
            b.close()
        bound = "same" if role == "perception" else quant
        section["bounds"] = bound
        section["failures"] = failures(section, bound)
        section["passes"] = not section["failures"]
        report[role] = section
    return report


def failures(section: dict, bound: str) -> list[str]:
    """Every bound `section` breaks, in words."""
    text_bound, greedy_exact, cosine = BOUNDS[bound]
    text, found = section["text"], []
    if not text.get("compared"):
        return ["no finite logits to compare"]
    scale = max(1.0, text["ref_abs_max"])
    if text["max_abs"] / scale > text_bound.max_abs:
        found.append(f"max |Δlogit| {text['max_abs']:.3g} > {text_bound.max_abs} x {scale:.3g}")
    if text["rel_rms"] > text_bound.rel_rms:
        found.append(f"rms ratio {text['rel_rms']:.3g} > {text_bound.rel_rms}")
    if text["argmax_agreement"] < text_bound.argmax:
        found.append(f"argmax agreement {text['argmax_agreement']:.1%} < {text_bound.argmax:.0%}")
    greedy = [section["greedy"]] + ([section["vision"]["greedy"]] if "vision" in section else [])
    if greedy_exact and not all(g["equal"] for g in greedy):
        found.append("greedy tokens differ")
    if "vision" in section and section["vision"].get("cosine", 0.0) < cosine:
        found.append(f"image embedding cosine {section['vision'].get('cosine')} < {cosine}")
    return found


def stage_rss(package: str, role: str, tokens: int = RSS_TOKENS) -> dict:
    """Load one stage of the package in this (fresh) process, run it for `tokens` tokens:
    the process's peak RSS while it did (the worker's own imports included: `before_load`)
    and the stage's rates."""
    bundle = Bundle.load(package)
    reset_peak_rss()  # the peak from here on: the stage, over what this process already holds
    before = current_rss()
    started = time.perf_counter()
    model = _open(bundle.require(role))
    load_s = time.perf_counter() - started
    run = edge_stage(model, _request(model, role, tokens))
    model.close()
    return {
        "peak_rss_bytes": process_peak_rss(),
        "before_load_rss_bytes": before,
        "load_s": load_s,
        "prompt_tokens": run.prompt_tokens,
        "tokens": run.tokens,
        "prefill_tok_s": run.prefill_tok_s,
        "decode_tok_s": run.decode_tok_s,
        "image_encode_s": run.image_encode_s,
    }


def _request(model, role: str, tokens: int) -> StageRequest:
    if role == "perception":
        image = _picture(128, 128)
        content = model.media_marker + "\n" + prompts.extraction_prompt("the details")
        return StageRequest(content, Sampling(), tokens, image=image)
    return StageRequest(
        prompts.reasoning_prompt(SAMPLE_DESCRIPTION, SAMPLE_QUESTION, step_by_step=True),
        Sampling(),
        tokens,
    )


def _picture(height: int, width: int) -> LoadedImage:
    rgb = test_picture(height, width)
    rgb.flags.writeable = False
    return LoadedImage(
        rgb=rgb,
        width=width,
        height=height,
        sha256=pixel_sha256(rgb),
        source="test picture",
        format="generated",
        original_mode="RGB",
    )
