"""Validate exported GGUFs against their transformers checkpoint.

`run_parity` measures in a worker subprocess (export/parity/gguf_measure.py), so torch's memory
and llama.cpp's global state never reach the exporting process; the export pipeline saves its
report as `parity.json` in the bundle. `passes(report)` judges a report against the thresholds
below and names the first failure in one line.

What is measured
  text    Four fixed prompts (plain, chat template, special tokens, ~70-token passage), tokenized
          once by the HF tokenizer; the same ids go to transformers (fp32, eager) and to
          llama.cpp (`logits_all=True`); every position's logits are compared. Separately,
          llama.cpp's own tokenizer must reproduce the HF ids of the prompts and of 4 probes
          (unicode, runs of spaces, CRLF, digits). For a VLM: its language model, text only.
  vision  One synthetic image of a size that neither preprocessor resizes; libmtmd's image
          embeddings against the HF model's image features (cosine), and the greedy first
          token of the full VLM with that image on the same token sequence. A tiling model
          (Idefics3 / SmolVLM) gets a square of the processor's longest edge, which both sides
          cut into the same grid; the processor's views (tiles, then the global view) are
          compared with libmtmd's image chunks in order, each chunk's cosine reported.

The report (JSON; one per stage in parity.json)
  format, hf_dir, model_type, quant, mmproj_quant, versions, thresholds, seconds, ok,
  first_failure (None when ok), and the sections; a crashed worker gives `error` instead.
  text: gguf, n_vocab {hf, llama_cpp}, tokenization {cases, mismatches [{case, text,
    first_diff_at, hf, llama_cpp}]}, prompts [{name, positions, nonfinite {hf, llama_cpp},
    compared, max_abs, mean_abs, ref_abs_max, ref_std, rel_rms, argmax_agree, top5_agree,
    min_corr, flips [{pos, ref_gap}], max_flip_gap}], summary (all prompts), seconds.
  vision: mmproj, image_size, image_tokens, embeddings {shape, cosine, min_token_cosine,
    mean_token_cosine, max_abs, ref_norm, got_norm, chunk_cosine (several image chunks
    only)}, first_token {hf, llama_cpp, ref_gap,
    max_abs, ref_abs_max}, seconds (+ external for LLaVA-OneVision).

Thresholds (text: per prompt; "scale" is max(1, largest |reference logit|))

    quant    max|Δlogit|/scale  rms(Δ)/std(ref)  argmax agreement   mmproj cosine
    F32      1e-3               2e-3             100%               0.999 (min token 0.995)
    F16      5e-3               5e-3             100%               0.999 (min token 0.995)
    BF16     2e-2               3e-2             100%               0.995 (min token 0.98)
    Q8_0     5e-2               5e-2             98%                0.99  (min token 0.95)
    Q6_K     0.10               0.12             90%                -
    Q5_K_M   0.15               0.18             90%                -
    Q4_K_M   0.25               0.30             90%                -

Calibration (tiny random checkpoints, 2026-11-28): the tiny Qwen3 (hidden 256) gives max|Δ|/scale
3.4e-4 (F32), 7.6e-4 (F16), 5.3e-3 (BF16), 1.9e-2 (Q8_0), 5.1e-2 (Q6_K), 7.6e-2 (Q5_K_M),
0.135 (Q4_K_M), rms ratio 4.1e-4, 9.0e-4, 6.4e-3, 2.0e-2, 5.9e-2, 9.5e-2, 0.17. Over all 11
registered architectures: F16 at most 1.2e-3 / 1.3e-3, Q4_K_M at most 0.16 / 0.17; mmproj
cosine >= 0.99999 (F16) and >= 0.99993 (Q8_0, worst token 0.9998). Bounds sit 1.7-8x above.
Errors grow with the logits, hence bounds relative to the largest logit (never below the
absolute value, for the flat logits of random models).

Argmax: random models have flat logits (top-2 gaps of 1e-3 are common) and quantization flips
such near-ties: raw agreement is 97% at Q8_0 and 71-100% at Q4_K_M on the tiny models. A flip
counts against agreement only if llama.cpp's pick sits more than the allowed max|Δlogit| below
the reference maximum; real models with peaked logits keep their flips meaningful.

What fails (tiny Qwen3 / Qwen2-VL): `rope_theta` x 0.01 gives max|Δ|/scale 0.31 at F32 and
0.34 (rms 0.40) at Q4_K_M; gate/up projections of one layer swapped 0.15 at F16 and Q8_0; a
wrong pre-tokenizer fails tokenization; RGB read as BGR in the patch embedding gives cosine
0.39. Not caught: the gate/up swap at Q4_K_M (0.19, rms 0.24: inside the quantization noise of a
random model). K-quants are judged loosely, so also validate the F16 file a K-quant is made from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_et.core.host import usable_cores
from export.parity.judge import (
    TextThresholds,
    as_float,
    crashed,
    logit_bound,
    prompt_failures,
    verdict,
)
from export.parity.launcher import run_worker

FORMAT = "edge-et.parity/1"


@dataclass(frozen=True)
class VisionThresholds:
    """cosine: over the whole embedding tensor; min_token: the worst single image token."""

    cosine: float
    min_token: float


TEXT_THRESHOLDS: dict[str, TextThresholds] = {
    "F32": TextThresholds(1e-3, 2e-3, 1.0),
    "F16": TextThresholds(5e-3, 5e-3, 1.0),
    "BF16": TextThresholds(2e-2, 3e-2, 1.0),
    "Q8_0": TextThresholds(5e-2, 5e-2, 0.98),
    "Q6_K": TextThresholds(0.10, 0.12, 0.90),
    "Q5_K_M": TextThresholds(0.15, 0.18, 0.90),
    "Q4_K_M": TextThresholds(0.25, 0.30, 0.90),
}
MMPROJ_THRESHOLDS: dict[str, VisionThresholds] = {
    "F32": VisionThresholds(0.999, 0.995),
    "F16": VisionThresholds(0.999, 0.995),
    "BF16": VisionThresholds(0.995, 0.98),
    "Q8_0": VisionThresholds(0.99, 0.95),
}


def _lookup(table: dict, quant: str, what: str):
    key = str(quant).upper()
    if key not in table:
        raise ValueError(f"no {what} parity thresholds for {quant!r}; known: {', '.join(table)}")
    return table[key]


def text_thresholds(quant: str) -> TextThresholds:
    return _lookup(TEXT_THRESHOLDS, quant, "text")


def mmproj_thresholds(quant: str) -> VisionThresholds:
    return _lookup(MMPROJ_THRESHOLDS, quant, "mmproj")


def default_threads() -> int:
    # The reference forward dominates; more than 4 threads buys little on tiny prompts.
    return max(1, min(4, usable_cores()))


# -- the subprocess ----------------------------------------------------------------------


def run_parity(
    hf_dir: Path,
    *,
    text_gguf: Path,
    mmproj_gguf: Path | None = None,
    quant: str,
    mmproj_quant: str | None = None,
    threads: int | None = None,
    timeout: float = 3600,
) -> dict:
    """Measure `text_gguf` (and `mmproj_gguf`) against `hf_dir` in a subprocess.

    Returns the report dict (JSON-ready; see the module doc). A worker that crashes or times
    out still yields a report, with `error` set, that `passes` rejects.
    """
    text_thresholds(quant)  # unknown quant types fail here, not in the subprocess
    if mmproj_gguf:
        mmproj_thresholds(mmproj_quant or "F16")
    request = {
        "hf_dir": str(Path(hf_dir).resolve()),
        "text_gguf": str(Path(text_gguf).resolve()),
        "mmproj_gguf": str(Path(mmproj_gguf).resolve()) if mmproj_gguf else None,
        "quant": quant,
        "mmproj_quant": mmproj_quant,
        "threads": threads,
    }
    outcome = run_worker("gguf", request, timeout=timeout, label="the parity worker")
    if isinstance(outcome, dict):
        return outcome
    return crashed(FORMAT, request, ("hf_dir", "quant", "mmproj_quant"), outcome)


# -- judging -----------------------------------------------------------------------------


def passes(report: dict) -> tuple[bool, str]:
    """(True, "") if every measurement is within its quant's thresholds, else (False, line)
    with the first failure. Judged from the measurements, never from a stored `ok`."""
    if report.get("error"):
        return False, report["error"]
    if "text" not in report and "vision" not in report:
        return False, "the report has neither a text nor a vision section"
    failures = []
    if "text" in report:
        quant = report["quant"]
        failures += _text_failures(report["text"], text_thresholds(quant), quant)
    if "vision" in report:
        failures += _vision_failures(report["vision"], report)
    return verdict(failures)


def _text_failures(text: dict, th: TextThresholds, quant: str) -> list[str]:
    if text.get("error"):
        return [f"text: {text['error']}"]
    out = [
        f"text: llama.cpp tokenizes {m['case']!r} differently from the HF tokenizer at token "
        f"{m['first_diff_at']}: hf {m['hf']} vs llama.cpp {m['llama_cpp']}"
        for m in text["tokenization"]["mismatches"]
    ]
    vocab = text["n_vocab"]
    if vocab["hf"] != vocab["llama_cpp"]:
        out.append(
            f"text: vocabulary sizes differ: hf {vocab['hf']} vs llama.cpp {vocab['llama_cpp']}"
        )
    for prompt in text["prompts"]:
        out += prompt_failures(
            prompt,
            th,
            f"text ({quant}), prompt {prompt['name']!r}",
            side="llama_cpp",
            name="llama.cpp",
        )
    return out


def _vision_failures(vision: dict, report: dict) -> list[str]:
    if vision.get("error"):
        return [f"vision: {vision['error']}"]
    th = mmproj_thresholds(report.get("mmproj_quant") or "F16")
    label = f"vision ({report.get('mmproj_quant')} mmproj)"
    emb = vision.get("embeddings") or {}
    if isinstance(emb.get("shape"), dict):
        return [
            f"{label}: image embeddings differ in shape: hf {emb['shape'].get('hf')} vs "
            f"llama.cpp {emb['shape'].get('llama_cpp')}"
        ]
    if "cosine" not in emb:
        return [f"{label}: the report has no image embedding measurements"]
    if emb.get("ref_norm", 1.0) == 0:
        return [
            f"{label}: transformers' image features are all zero (an untrained projector?): "
            "nothing to compare"
        ]
    out = []
    if not as_float(emb["cosine"]) >= th.cosine:
        out.append(f"{label}: image embedding cosine {as_float(emb['cosine']):.5f} < {th.cosine}")
    if not as_float(emb["min_token_cosine"]) >= th.min_token:
        out.append(
            f"{label}: worst image token cosine {as_float(emb['min_token_cosine']):.5f} "
            f"< {th.min_token}"
        )
    return out + _first_token_failures(vision.get("first_token"), report, label)


def _first_token_failures(first: dict | None, report: dict, label: str) -> list[str]:
    """The greedy first token with the image; a flip within the text quant's error is a tie."""
    if not first or first["hf"] == first["llama_cpp"]:
        return []
    tie = logit_bound(text_thresholds(report["quant"]), first.get("ref_abs_max", 0.0))
    gap = as_float(first.get("ref_gap"))  # None: the measurer had no reference logits
    if gap <= tie:
        return []
    why = (
        "no reference logits"
        if first.get("ref_gap") is None
        else f"reference gap {gap:.3g} > {tie:.3g}"
    )
    return [
        f"{label}: first token with the image differs: hf {first['hf']} vs llama.cpp "
        f"{first['llama_cpp']} ({why})"
    ]
