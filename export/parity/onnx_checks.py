"""What every ONNX parity section with generation or an image shares: greedy decoding on both
sides (with the same repeat penalty), the test picture and the image-embedding measures.
export/parity/onnx_measure.py and export/parity/onnx_idefics3.py build their sections from them.
"""

from __future__ import annotations

import numpy as np

from edge_et.backends.onnx.sampling import REPEAT_WINDOW
from edge_et.core.decoding import Sampling

GREEDY_TOKENS = 24
# Random tiny models repeat one token under plain greedy decoding; a repeat penalty makes the
# check walk through varied tokens. The runtime penalises what llama.cpp does (its last
# REPEAT_WINDOW draws, not the prompt); the transformers side gets the same rule
# (`_drawn_penalty`) instead of its own, which counts the prompt too.
GREEDY_PENALTY = 4.0
IMAGE_REQUEST = "Describe the fine-grained content of the image."


def onnx_greedy(model, prompt: str, image=None) -> list[int]:
    model.start(prompt=prompt, image=image)
    tokens: list[int] = []
    for _ in range(GREEDY_TOKENS):
        token = model.sample(sampling=Sampling(repeat_penalty=GREEDY_PENALTY))
        if model.is_end(token=token):
            break
        tokens.append(token)
        model.append(tokens=[token])
    return tokens


def _drawn_penalty(prompt_tokens: int, penalty: float):
    """A transformers logits processor: CTRL's repeat penalty over the last REPEAT_WINDOW
    generated tokens only (what edge-et's samplers and llama.cpp's penalties sampler do)."""
    import torch
    from transformers import LogitsProcessor

    class DrawnPenalty(LogitsProcessor):
        def __call__(self, input_ids, scores):
            drawn = input_ids[0, prompt_tokens:][-REPEAT_WINDOW:]
            if len(drawn):
                ids = torch.unique(drawn)
                values = scores[0, ids]
                scores[0, ids] = torch.where(values > 0, values / penalty, values * penalty)
            return scores

    return DrawnPenalty()


def hf_greedy(hf, ids: list[int], ends: list[int], **extra) -> list[int]:
    import torch
    from transformers import LogitsProcessorList

    with torch.inference_mode():
        out = hf.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=GREEDY_TOKENS,
            do_sample=False,
            eos_token_id=ends,
            pad_token_id=ends[0],
            logits_processor=LogitsProcessorList([_drawn_penalty(len(ids), GREEDY_PENALTY)]),
            **extra,
        )
    tokens = out[0, len(ids) :].tolist()
    return tokens[: next((i for i, t in enumerate(tokens) if t in ends), len(tokens))]


def greedy_report(hf_tokens: list[int], onnx_tokens: list[int], prompt_tokens: int) -> dict:
    first = next(
        (i for i, (a, b) in enumerate(zip(hf_tokens, onnx_tokens)) if a != b),
        None if len(hf_tokens) == len(onnx_tokens) else min(len(hf_tokens), len(onnx_tokens)),
    )
    return {
        "prompt_tokens": prompt_tokens,
        "repeat_penalty": GREEDY_PENALTY,
        "hf": hf_tokens,
        "onnx": onnx_tokens,
        "equal": first is None,
        "first_diff": first,
    }


def test_picture(height: int, width: int) -> np.ndarray:
    """A smooth, seeded RGB picture (gradients plus a few blocks), uint8."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack(
        [
            x * 255 // max(1, width - 1),
            y * 255 // max(1, height - 1),
            (x + y) * 127 // max(1, width + height - 2),
        ],
        axis=-1,
    ).astype(np.uint8)
    for _ in range(4):
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        rgb[top : top + height // 4, left : left + width // 4] = rng.integers(0, 256, 3)
    return rgb


def embedding_measures(ref: np.ndarray, got: np.ndarray) -> dict:
    if ref.shape != got.shape:
        return {"shape": {"hf": list(ref.shape), "onnx": list(got.shape)}}
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    token_cos = (ref64 * got64).sum(-1) / np.maximum(
        np.linalg.norm(ref64, axis=-1) * np.linalg.norm(got64, axis=-1), 1e-30
    )
    cosine = float(
        (ref64 * got64).sum() / max(np.linalg.norm(ref64) * np.linalg.norm(got64), 1e-30)
    )
    return {
        "shape": list(ref.shape),
        "cosine": cosine,
        "min_token_cosine": float(token_cos.min()),
        "max_abs": float(np.abs(ref64 - got64).max()),
        "ref_norm": float(np.linalg.norm(ref64)),
    }
