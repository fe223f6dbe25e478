"""Validate an exported ONNX stage against its transformers checkpoint.

`run_parity` measures in a worker subprocess (export/parity/onnx_measure.py says what is
measured); `passes(report)` judges the report against the bounds below and names the
first failure in one line. The export writes every stage's report into `parity.json`.

Bounds ("scale" is max(1, largest |reference logit|)):

    quant  max|Δlogit|/scale  rms(Δ)/std(ref)  argmax  greedy tokens   image cosine (min token)
    fp32   1e-3               2e-3             100%    all equal       0.9999 (0.999)
    fp16   5e-3               5e-3             100%    all equal       0.999  (0.995)
    int8   0.10               0.10             90%     reported        0.99   (0.95)

The runtime's numpy pixel values must match the HF image processor's within PIXEL_MAX_ABS at
every precision (the same arithmetic, so only float rounding may differ), and where the report
compares the prompt's ids with the image (Idefics3), they must be equal. Argmax flips count
only when the ONNX pick sits more than the allowed max|Δlogit| below the reference maximum
(random tiny models have near-ties, as in export/parity/gguf.py). Calibration on the tiny models
of every supported architecture is recorded in README ("ONNX bundles").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from export.parity.judge import TextThresholds, as_float, crashed, prompt_failures, verdict
from export.parity.launcher import run_worker

FORMAT = "edge-et.onnx-parity/1"
PIXEL_MAX_ABS = 1e-5


@dataclass(frozen=True)
class OnnxThresholds:
    """Text logit bounds, whether greedy tokens must match exactly, image embedding cosines."""

    text: TextThresholds
    greedy_exact: bool
    cosine: float
    min_token: float


THRESHOLDS = {
    "fp32": OnnxThresholds(TextThresholds(1e-3, 2e-3, 1.0), True, 0.9999, 0.999),
    "fp16": OnnxThresholds(TextThresholds(5e-3, 5e-3, 1.0), True, 0.999, 0.995),
    "int8": OnnxThresholds(TextThresholds(0.10, 0.10, 0.90), False, 0.99, 0.95),
}


def thresholds(quant: str) -> OnnxThresholds:
    if quant not in THRESHOLDS:
        raise ValueError(f"no ONNX parity thresholds for {quant!r}; known: {', '.join(THRESHOLDS)}")
    return THRESHOLDS[quant]


def run_parity(
    hf_dir: Path, stage_dir: Path, *, quant: str, threads: int | None = None, timeout: float = 3600
) -> dict:
    """Measure the stage folder `stage_dir` against `hf_dir` in a subprocess; a crash or a
    timeout still gives a report (with `error`) that `passes` rejects."""
    thresholds(quant)
    request = {
        "hf_dir": str(Path(hf_dir).resolve()),
        "stage_dir": str(Path(stage_dir).resolve()),
        "quant": quant,
        "threads": threads,
    }
    outcome = run_worker("onnx", request, timeout=timeout, label="the ONNX parity worker")
    return (
        outcome
        if isinstance(outcome, dict)
        else crashed(FORMAT, request, ("hf_dir", "quant"), outcome)
    )


# -- judging -----------------------------------------------------------------------------


def passes(report: dict) -> tuple[bool, str]:
    """(True, "") when every measurement is within bounds, else (False, first failure)."""
    if report.get("error"):
        return False, report["error"]
    if "text" not in report:
        return False, "the report has no text section"
    th = thresholds(report["quant"])
    failures = _text_failures(report["text"], th.text)
    failures += _greedy_failures(report.get("greedy"), th, "text")
    if "vision" in report:
        failures += _vision_failures(report["vision"], th)
    return verdict(failures)


def _text_failures(text: dict, th: TextThresholds) -> list[str]:
    out = [
        f"text: the runtime tokenizes {m['case']!r} differently from the HF tokenizer at "
        f"token {m['first_diff_at']}: hf {m['hf']} vs onnx {m['onnx']}"
        for m in text["tokenization"]["mismatches"]
    ]
    if text["n_vocab"]["hf"] != text["n_vocab"]["onnx"]:
        out.append(
            f"text: vocabulary sizes differ: hf {text['n_vocab']['hf']} vs onnx "
            f"{text['n_vocab']['onnx']}"
        )
    for p in text["prompts"]:
        out += prompt_failures(p, th, f"text, prompt {p['name']!r}", side="onnx", name="onnx")
    return out


def _greedy_failures(greedy: dict | None, th: OnnxThresholds, what: str) -> list[str]:
    if greedy is None:
        return [f"{what}: no greedy generation measured"]
    if th.greedy_exact and not greedy["equal"]:
        return [
            f"{what}: greedy tokens differ from transformers' at token {greedy['first_diff']} "
            f"(hf {greedy['hf'][:8]}..., onnx {greedy['onnx'][:8]}...)"
        ]
    return []


def _vision_failures(vision: dict, th: OnnxThresholds) -> list[str]:
    out = []
    pixels = vision["pixels"]
    if pixels["max_abs"] is None:
        return [
            f"vision: pixel values differ in shape: hf {pixels['shape']['hf']} vs onnx "
            f"{pixels['shape']['onnx']}"
        ]
    if not as_float(pixels["max_abs"]) <= PIXEL_MAX_ABS:
        out.append(
            f"vision: numpy preprocessing differs from the HF image processor by "
            f"{as_float(pixels['max_abs']):.3g} > {PIXEL_MAX_ABS:g}"
        )
    prompt = vision.get("prompt_ids")
    if prompt and not prompt["equal"]:
        out.append("vision: the runtime's prompt ids with the image differ from the processor's")
    emb = vision["embeddings"]
    if "cosine" not in emb:
        return out + [
            f"vision: image embeddings differ in shape: hf {emb['shape']['hf']} vs "
            f"onnx {emb['shape']['onnx']}"
        ]
    if not as_float(emb["cosine"]) >= th.cosine:
        out.append(f"vision: image embedding cosine {as_float(emb['cosine']):.6f} < {th.cosine}")
    if not as_float(emb["min_token_cosine"]) >= th.min_token:
        out.append(
            f"vision: worst image token cosine {as_float(emb['min_token_cosine']):.6f} < "
            f"{th.min_token}"
        )
    return out + _greedy_failures(vision.get("greedy"), th, "vision")
