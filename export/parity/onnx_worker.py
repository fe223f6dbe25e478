"""The ONNX parity check's worker: one exported stage folder against its transformers checkpoint.

    python -m export.parity.onnx_worker REQUEST.json REPORT.json

Runs in the subprocess that `export.parity.onnx.run_parity` starts. The ONNX side is the
runtime itself (`edge_et.backends.onnx.model.OnnxModel`), so what is measured is what ships.

  text    the GGUF check's four prompts, the same ids on both sides, every position's logits;
          the runtime tokenizer (`tokenizers` + our BOS rule) against the HF tokenizer.
  greedy  a chat prompt, up to GREEDY_TOKENS greedy tokens (with a repeat penalty, see
          GREEDY_PENALTY) from transformers' `generate` and from the runtime's KV-cache loop:
          the token lists and where they first differ.
  vision  (VLMs) one synthetic picture that the preprocessing must resize or pad (the anyres
          grid pads, Qwen2-VL resizes): the runtime's numpy pixel values against the HF image
          processor's, its packed embeddings against
          `get_image_features`, and greedy tokens with the image on both sides
          (Idefics3: export/parity/onnx_idefics3.py, the prompt's ids too).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from export.onnx.qwen2vl import hf_reference as hf_qwen2vl_reference
from export.parity.gguf_worker import (
    CHAT_QUESTION,
    PROBES,
    compare_logits,
    hf_ids,
    hf_logits,
    json_safe,
    load_hf_model,
    summarize,
    text_prompts,
)

GREEDY_TOKENS = 24
# Random tiny models repeat one token under plain greedy decoding; a repeat penalty makes the
# check walk through varied tokens. The runtime penalises what llama.cpp does (its last
# REPEAT_WINDOW draws, not the prompt); the transformers side gets the same rule
# (`_DrawnPenalty`) instead of its own, which counts the prompt too.
GREEDY_PENALTY = 4.0
IMAGE_REQUEST = "Describe the fine-grained content of the image."


def _open(stage_dir: Path, threads: int):
    from edge_et.backends.onnx.model import OnnxModel

    vision = stage_dir / "vision.onnx"
    return OnnxModel(model_path=str(stage_dir / "decoder.onnx"), n_ctx=4096,
                     mmproj_path=str(vision) if vision.is_file() else None, n_threads=threads)


def _rename(measures: dict) -> dict:
    # compare_logits names the compared side "llama_cpp"; here it is the ONNX graph.
    bad = measures["nonfinite"]
    return {**measures, "nonfinite": {"hf": bad["hf"], "onnx": bad.pop("llama_cpp")}}


def text_section(hf, tokenizer, model) -> dict:
    prompts = text_prompts(tokenizer)
    per_prompt = []
    for prompt in prompts:
        ids = hf_ids(tokenizer, prompt)
        ref, got = hf_logits(hf, ids), model.score(ids=ids)
        vocab = min(ref.shape[-1], got.shape[-1])
        per_prompt.append({"name": prompt.name, **_rename(compare_logits(ref[:, :vocab],
                                                                         got[:, :vocab]))})
    return {"n_vocab": {"hf": int(ref.shape[-1]), "onnx": int(got.shape[-1])},
            "tokenization": _tokenization(tokenizer, model, prompts),
            "prompts": per_prompt, "summary": summarize(per_prompt)}


def _tokenization(tokenizer, model, prompts) -> dict:
    cases = [(p.name, p.text, p.add_special) for p in prompts]
    cases += [(f"probe{i}", text, False) for i, text in enumerate(PROBES)]
    mismatches = []
    for name, text, add_special in cases:
        expected = list(tokenizer(text, add_special_tokens=add_special)["input_ids"])
        got = model.prompt_ids(text, first=add_special)
        if got != expected:
            at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
                      min(len(got), len(expected)))
            mismatches.append({"case": name, "first_diff_at": at,
                               "hf": expected[max(0, at - 2):at + 4],
                               "onnx": got[max(0, at - 2):at + 4]})
    return {"cases": len(cases), "mismatches": mismatches}


def _onnx_greedy(model, prompt: str, image=None) -> list[int]:
    from edge_et.core.decoding import Sampling

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

    from edge_et.backends.onnx.sampling import REPEAT_WINDOW

    class DrawnPenalty(LogitsProcessor):
        def __call__(self, input_ids, scores):
            drawn = input_ids[0, prompt_tokens:][-REPEAT_WINDOW:]
            if len(drawn):
                ids = torch.unique(drawn)
                values = scores[0, ids]
                scores[0, ids] = torch.where(values > 0, values / penalty, values * penalty)
            return scores

    return DrawnPenalty()


def _hf_greedy(hf, ids: list[int], ends: list[int], **extra) -> list[int]:
    import torch
    from transformers import LogitsProcessorList

    with torch.inference_mode():
        out = hf.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids),
                          dtype=torch.long), max_new_tokens=GREEDY_TOKENS, do_sample=False,
                          eos_token_id=ends, pad_token_id=ends[0],
                          logits_processor=LogitsProcessorList(
                              [_drawn_penalty(len(ids), GREEDY_PENALTY)]), **extra)
    tokens = out[0, len(ids):].tolist()
    return tokens[:next((i for i, t in enumerate(tokens) if t in ends), len(tokens))]


def _greedy_report(hf_tokens: list[int], onnx_tokens: list[int], prompt_tokens: int) -> dict:
    first = next((i for i, (a, b) in enumerate(zip(hf_tokens, onnx_tokens)) if a != b),
                 None if len(hf_tokens) == len(onnx_tokens) else min(len(hf_tokens),
                                                                     len(onnx_tokens)))
    return {"prompt_tokens": prompt_tokens, "repeat_penalty": GREEDY_PENALTY, "hf": hf_tokens,
            "onnx": onnx_tokens, "equal": first is None, "first_diff": first}


def greedy_section(hf, model) -> dict:
    from edge_et.core.chat import render_user_turn

    prompt = render_user_turn(model.chat_template, CHAT_QUESTION, bos_text=model.bos_text,
                              eos_text=model.eos_text)
    ids = model.prompt_ids(prompt, first=True)
    ends = sorted(model.config["end_token_ids"])
    return _greedy_report(_hf_greedy(hf, ids, ends), _onnx_greedy(model, prompt), len(ids))


def test_picture(height: int, width: int) -> np.ndarray:
    """A smooth, seeded RGB picture (gradients plus a few blocks), uint8."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                    (x + y) * 127 // max(1, width + height - 2)], axis=-1).astype(np.uint8)
    for _ in range(4):
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        rgb[top:top + height // 4, left:left + width // 4] = rng.integers(0, 256, 3)
    return rgb


def _llava_ov_reference(hf, hf_dir: Path, rgb: np.ndarray, n_views: int):
    """HF pixel values (the views the runtime makes), image features, generate() image kwargs."""
    from transformers import LlavaOnevisionImageProcessor

    inputs = LlavaOnevisionImageProcessor.from_pretrained(hf_dir)(rgb, return_tensors="pt")
    ref = hf.model.get_image_features(inputs["pixel_values"], inputs["image_sizes"])[0]
    return inputs["pixel_values"][0, :n_views].numpy(), ref, \
        {"pixel_values": inputs["pixel_values"], "image_sizes": inputs["image_sizes"]}


def _llava_ov_picture(model) -> tuple[int, int]:
    tile = model._vision.layout.tile
    return tile + tile // 2, 2 * tile + tile // 3  # a grid with padding to undo


def _qwen2vl_picture(model) -> tuple[int, int]:
    unit = int(model.config["vision"]["patch_size"]) * int(model.config["vision"]["merge_size"])
    return int(unit * 3.6), int(unit * 5.4)  # sides off the grid: the processor resizes


# vision kind → (picture (height, width) for a model, HF reference of a picture)
VISION_REFERENCES = {
    "llava_onevision": (_llava_ov_picture, _llava_ov_reference),
    "qwen2_vl": (_qwen2vl_picture, hf_qwen2vl_reference),
    "qwen2_5_vl": (_qwen2vl_picture, hf_qwen2vl_reference),
}


def vision_section(hf, hf_dir: Path, model) -> dict:
    import torch

    from edge_et.core.chat import render_user_turn
    from edge_et.core.images import LoadedImage, pixel_sha256

    picture, reference = VISION_REFERENCES[model.config["vision"]["kind"]]
    rgb = test_picture(*picture(model))
    image = LoadedImage(rgb=rgb, width=rgb.shape[1], height=rgb.shape[0],
                        sha256=pixel_sha256(rgb), source="parity", format="PNG",
                        original_mode="RGB")
    ours = model._vision.pixel_values(rgb)
    with torch.inference_mode():
        theirs, ref, image_inputs = reference(hf, hf_dir, rgb, len(ours))
    ref = ref.float().numpy()
    got, _ = model._vision.embed(image)
    prompt = render_user_turn(model.chat_template, model.media_marker + "\n" + IMAGE_REQUEST,
                              bos_text=model.bos_text, eos_text=model.eos_text)
    head, tail = model.image_prompt_ids(prompt)
    image_id = int(model.config["vision"]["image_token_id"])
    ids = head + [image_id] * len(ref) + tail
    ends = sorted(model.config["end_token_ids"])
    hf_tokens = _hf_greedy(hf, ids, ends, **image_inputs)
    return {"image_size": [int(rgb.shape[0]), int(rgb.shape[1])],
            "pixels": {"shape": {"hf": list(theirs.shape), "onnx": list(ours.shape)},
                       "max_abs": float(np.abs(theirs - ours).max()) if theirs.shape == ours.shape
                       else None},
            "embeddings": embedding_measures(ref, got),
            "greedy": _greedy_report(hf_tokens, _onnx_greedy(model, prompt, image), len(ids))}


def _vision_section(kind: str):
    """`vision_section` for the kinds of VISION_REFERENCES; another kind's (whose image span is
    more than image tokens, Idefics3) lives in export/onnx_<kind>_parity.py."""
    if kind in VISION_REFERENCES:
        return vision_section
    import importlib

    return importlib.import_module(f"export.parity.onnx_{kind}").vision_section


def embedding_measures(ref: np.ndarray, got: np.ndarray) -> dict:
    if ref.shape != got.shape:
        return {"shape": {"hf": list(ref.shape), "onnx": list(got.shape)}}
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    token_cos = (ref64 * got64).sum(-1) / np.maximum(
        np.linalg.norm(ref64, axis=-1) * np.linalg.norm(got64, axis=-1), 1e-30)
    cosine = float((ref64 * got64).sum() / max(np.linalg.norm(ref64) * np.linalg.norm(got64),
                                               1e-30))
    return {"shape": list(ref.shape), "cosine": cosine, "min_token_cosine": float(token_cos.min()),
            "max_abs": float(np.abs(ref64 - got64).max()), "ref_norm": float(np.linalg.norm(ref64))}


def measure(hf_dir: str, stage_dir: str, quant: str, threads: int = 2) -> dict:
    """Every section for one stage (no verdict: export.parity.onnx judges)."""
    import torch
    from transformers import AutoTokenizer

    started = time.perf_counter()
    torch.set_num_threads(threads)
    hf_path, stage = Path(hf_dir), Path(stage_dir)
    model = _open(stage, threads)
    hf = load_hf_model(hf_path)
    tokenizer = AutoTokenizer.from_pretrained(hf_path)
    report = {"stage": stage.name, "text": text_section(hf, tokenizer, model),
              "greedy": greedy_section(hf, model)}
    if (stage / "vision.onnx").is_file():
        report["vision"] = _vision_section(model.config["vision"]["kind"])(hf, hf_path, model)
    model.close()
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text())
    from export.parity import onnx as onnx_parity  # the judge; imported here so `-m` works from any cwd

    report = onnx_parity.measure(**request)
    Path(argv[1]).write_text(json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
