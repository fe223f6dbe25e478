"""The ONNX parity check's measurements: one exported stage folder against its transformers
checkpoint.

Runs in the worker subprocess that `export.parity.onnx.run_parity` starts (kind "onnx" of
export/parity/worker.py). The ONNX side is the runtime itself (`edge_et.backends.onnx.model.OnnxModel`), so what is measured is what ships.

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

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edge_et.core.chat import render_user_turn
from edge_et.core.images import LoadedImage, pixel_sha256
from export.parity import onnx_idefics3
from export.parity.gguf import default_threads
from export.parity.gguf_text import (
    CHAT_QUESTION,
    PROBES,
    compare_logits,
    hf_ids,
    hf_logits,
    load_hf_model,
    summarize,
    text_prompts,
)
from export.parity.onnx import FORMAT, passes, thresholds
from export.parity.onnx_checks import (
    IMAGE_REQUEST,
    embedding_measures,
    greedy_report,
    hf_greedy,
    onnx_greedy,
    test_picture,
)


def _open(stage_dir: Path, threads: int):
    from edge_et.backends.onnx.model import OnnxModel

    vision = stage_dir / "vision.onnx"
    return OnnxModel(
        model_path=str(stage_dir / "decoder.onnx"),
        n_ctx=4096,
        mmproj_path=str(vision) if vision.is_file() else None,
        n_threads=threads,
    )


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
        per_prompt.append(
            {"name": prompt.name, **_rename(compare_logits(ref[:, :vocab], got[:, :vocab]))}
        )
    return {
        "n_vocab": {"hf": int(ref.shape[-1]), "onnx": int(got.shape[-1])},
        "tokenization": _tokenization(tokenizer, model, prompts),
        "prompts": per_prompt,
        "summary": summarize(per_prompt),
    }


def _tokenization(tokenizer, model, prompts) -> dict:
    cases = [(p.name, p.text, p.add_special) for p in prompts]
    cases += [(f"probe{i}", text, False) for i, text in enumerate(PROBES)]
    mismatches = []
    for name, text, add_special in cases:
        expected = list(tokenizer(text, add_special_tokens=add_special)["input_ids"])
        got = model.prompt_ids(text, first=add_special)
        if got != expected:
            at = next(
                (i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
                min(len(got), len(expected)),
            )
            mismatches.append(
                {
                    "case": name,
                    "first_diff_at": at,
                    "hf": expected[max(0, at - 2) : at + 4],
                    "onnx": got[max(0, at - 2) : at + 4],
                }
            )
    return {"cases": len(cases), "mismatches": mismatches}


def greedy_section(hf, model) -> dict:
    prompt = render_user_turn(
        model.chat_template, CHAT_QUESTION, bos_text=model.bos_text, eos_text=model.eos_text
    )
    ids = model.prompt_ids(prompt, first=True)
    ends = sorted(model.config["end_token_ids"])
    return greedy_report(hf_greedy(hf, ids, ends), onnx_greedy(model, prompt), len(ids))


def _llava_ov_reference(hf, hf_dir: Path, rgb: np.ndarray, n_views: int):
    """HF pixel values (the views the runtime makes), image features, generate() image kwargs."""
    from transformers import LlavaOnevisionImageProcessor

    inputs = LlavaOnevisionImageProcessor.from_pretrained(hf_dir)(rgb, return_tensors="pt")
    ref = hf.model.get_image_features(inputs["pixel_values"], inputs["image_sizes"])[0]
    return (
        inputs["pixel_values"][0, :n_views].numpy(),
        ref,
        {"pixel_values": inputs["pixel_values"], "image_sizes": inputs["image_sizes"]},
    )


def _llava_ov_picture(model) -> tuple[int, int]:
    tile = model.vision.layout.tile
    return tile + tile // 2, 2 * tile + tile // 3  # a grid with padding to undo


def _qwen2vl_reference(hf, hf_dir: Path, rgb, n_views: int):  # noqa: ARG001 - one signature per kind
    """The HF processor's pixel values, `get_image_features` of them and
    the image kwargs of `generate`."""
    from transformers import Qwen2VLImageProcessor

    inputs = Qwen2VLImageProcessor.from_pretrained(hf_dir)(rgb, return_tensors="pt")
    ref = hf.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])[0]
    return (
        inputs["pixel_values"].numpy(),
        ref,
        {"pixel_values": inputs["pixel_values"], "image_grid_thw": inputs["image_grid_thw"]},
    )


def _qwen2vl_picture(model) -> tuple[int, int]:
    unit = int(model.config["vision"]["patch_size"]) * int(model.config["vision"]["merge_size"])
    return int(unit * 3.6), int(unit * 5.4)  # sides off the grid: the processor resizes


# vision kind → (picture (height, width) for a model, HF reference of a picture)
VISION_REFERENCES = {
    "llava_onevision": (_llava_ov_picture, _llava_ov_reference),
    "qwen2_vl": (_qwen2vl_picture, _qwen2vl_reference),
    "qwen2_5_vl": (_qwen2vl_picture, _qwen2vl_reference),
}


def vision_section(hf, hf_dir: Path, model) -> dict:
    import torch

    picture, reference = VISION_REFERENCES[model.config["vision"]["kind"]]
    rgb = test_picture(*picture(model))
    image = LoadedImage(
        rgb=rgb,
        width=rgb.shape[1],
        height=rgb.shape[0],
        sha256=pixel_sha256(rgb),
        source="parity",
        format="PNG",
        original_mode="RGB",
    )
    ours = model.vision.pixel_values(rgb)
    with torch.inference_mode():
        theirs, ref, image_inputs = reference(hf, hf_dir, rgb, len(ours))
    ref = ref.float().numpy()
    got, _ = model.vision.embed(image)
    prompt = render_user_turn(
        model.chat_template,
        model.media_marker + "\n" + IMAGE_REQUEST,
        bos_text=model.bos_text,
        eos_text=model.eos_text,
    )
    head, tail = model.image_prompt_ids(prompt)
    image_id = int(model.config["vision"]["image_token_id"])
    ids = head + [image_id] * len(ref) + tail
    ends = sorted(model.config["end_token_ids"])
    hf_tokens = hf_greedy(hf, ids, ends, **image_inputs)
    return {
        "image_size": [int(rgb.shape[0]), int(rgb.shape[1])],
        "pixels": {
            "shape": {"hf": list(theirs.shape), "onnx": list(ours.shape)},
            "max_abs": float(np.abs(theirs - ours).max()) if theirs.shape == ours.shape else None,
        },
        "embeddings": embedding_measures(ref, got),
        "greedy": greedy_report(hf_tokens, onnx_greedy(model, prompt, image), len(ids)),
    }


# vision kind → its section; Idefics3's image span is more than image tokens (its own module).
VISION_SECTIONS = {
    **{kind: vision_section for kind in VISION_REFERENCES},
    "idefics3": onnx_idefics3.vision_section,
}


def measure_sections(hf_dir: str, stage_dir: str, quant: str, threads: int = 2) -> dict:
    """Every section for one stage (no verdict: export.parity.onnx judges)."""
    import torch
    from transformers import AutoTokenizer

    started = time.perf_counter()
    torch.set_num_threads(threads)
    hf_path, stage = Path(hf_dir), Path(stage_dir)
    model = _open(stage, threads)
    hf = load_hf_model(hf_path)
    tokenizer = AutoTokenizer.from_pretrained(hf_path)
    report = {
        "stage": stage.name,
        "text": text_section(hf, tokenizer, model),
        "greedy": greedy_section(hf, model),
    }
    if (stage / "vision.onnx").is_file():
        report["vision"] = VISION_SECTIONS[model.config["vision"]["kind"]](hf, hf_path, model)
    model.close()
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


def measure(hf_dir: str, stage_dir: str, quant: str, threads: int | None = None) -> dict:
    """Measure in this process and add the verdict: what the "onnx" worker runs."""
    started = time.perf_counter()
    report = {
        "format": FORMAT,
        "hf_dir": str(Path(hf_dir).resolve()),
        "quant": quant,
        "thresholds": asdict(thresholds(quant)),
        "versions": _versions(),
    }
    try:
        report.update(measure_sections(hf_dir, stage_dir, quant, threads or default_threads()))
    except Exception as exc:  # noqa: BLE001 - every failure must land in the report
        report["error"] = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    report["seconds"] = round(time.perf_counter() - started, 2)
    report["ok"], failure = passes(report)
    report["first_failure"] = failure or None
    return report


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = None
    return found
