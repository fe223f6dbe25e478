"""The GGUF parity check's text measurements (and the llama.cpp side of the image check).

Runs inside the worker subprocess that `export.parity.gguf.run_parity` starts (kind "gguf" of
export/parity/worker.py), so that torch's memory and llama.cpp's global state never reach the
exporting process. Also the numpy comparisons of image embeddings and first tokens that
every vision check shares. This module measures; `export.parity.gguf` judges.

The text check feeds the *same token ids* (from the HF tokenizer) to transformers (fp32) and
to llama.cpp (`logits_all=True`) and compares the logits of every position; separately it
checks that llama.cpp's own tokenizer produces those ids.
"""

from __future__ import annotations

import ctypes
import gc
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ~70 tokens with real tokenizers: long enough that rope and attention over distance matter.
LONG_TEXT = (
    "In the picture there are three red circles on the left, two blue squares near the top "
    "right corner, and a yellow star in the middle. A small sign at the bottom reads OPEN 24/7. "
    "Count the objects, compare their sizes, then explain step by step which shape is closest "
    "to the star and why; finally give the answer on a line that starts with Answer:"
)
PLAIN_TEXT = "The quick brown fox jumps over the lazy dog."
CHAT_QUESTION = "What color is the circle in the top left corner? Think step by step."
# Tokenizer-only probes: what pre-tokenizer regexes and normalizers disagree on.
PROBES = (
    "Hello world!  The 3 red circles\n\nare at 12:30. I've  seen    it\t\ttwice?",
    "naïve café — 東京 🚀 ok",
    "  leading spaces and trailing  ",
    "ABC\r\nDEF 1234567 x=3.14159",
)
# Special tokens that stand for media in VLM vocabularies: never fed to a text-only forward.
_MEDIA_MARKS = ("image", "video", "vision", "img", "audio", "fake_token", "global", "row_", "col_")


@dataclass(frozen=True)
class Prompt:
    """One fixed prompt: `add_special` is whether the tokenizer adds BOS/EOS itself."""

    name: str
    text: str
    add_special: bool


def text_prompts(tokenizer) -> list[Prompt]:
    """The fixed prompts: plain text, a chat turn, special tokens, and a long passage."""
    bos = tokenizer.bos_token or ""
    prompts = [Prompt("plain", PLAIN_TEXT, True)]
    if tokenizer.chat_template:
        chat = tokenizer.apply_chat_template(
            [{"role": "user", "content": CHAT_QUESTION}], tokenize=False, add_generation_prompt=True
        )
        # As the runtime does: a template that writes BOS itself must not get a second one.
        prompts.append(Prompt("chat", chat, not (bos and chat.startswith(bos))))
    # Not the pad token: real prompts never hold it, and transformers zeroes its embedding row
    # at init, which a random model keeps (llama.cpp 0.3.36's qwen2vl, whose RMSNorm epsilon is
    # 0, turns that zero row into NaN logits for the whole batch).
    skip = {bos, tokenizer.pad_token}
    specials = [
        t
        for t in tokenizer.all_special_tokens
        if not any(m in t.lower() for m in _MEDIA_MARKS) and t not in skip
    ]
    pieces = ["Look:"] + [f"{t} part {i}" for i, t in enumerate(specials[:4])]
    if "<think>" in tokenizer.get_vocab():
        pieces.append("<think>\nLet me count.\n</think>\n\nAnswer: B")
    prompts.append(Prompt("specials", " ".join(pieces), True))
    prompts.append(Prompt("long", LONG_TEXT, True))
    return prompts


def hf_ids(tokenizer, prompt: Prompt) -> list[int]:
    return list(tokenizer(prompt.text, add_special_tokens=prompt.add_special)["input_ids"])


# -- transformers side -------------------------------------------------------------------


def load_hf_model(hf_dir: Path):
    """The fp32 reference model; a VLM loads whole and is run on its text-only path."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(hf_dir)
    auto = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
    # eager attention: the plainest reference (sdpa may pick fused kernels per shape).
    return auto.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager").eval()


def hf_logits(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        out = model(
            input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)
        )
    return out.logits[0].float().numpy()


# -- llama.cpp side ----------------------------------------------------------------------


def load_llama(gguf_path: Path, n_ctx: int, threads: int, *, logits_all: bool = True):
    """A llama.cpp model, by default one that keeps the logits of every position (an
    n_ctx x vocabulary buffer: keep n_ctx small with a large vocabulary)."""
    import llama_cpp

    from edge_et.backends.llama_cpp import log as llama_log

    llama_log.install()  # keep llama.cpp's hundreds of load lines out of the report's stderr
    llama_log.clear()
    try:
        return llama_cpp.Llama(
            model_path=str(gguf_path),
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=logits_all,
            verbose=False,
            seed=0,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise RuntimeError(
            f"llama.cpp cannot load {gguf_path.name}: {llama_log.last_error() or exc}"
        ) from None


def llama_logits(llm, ids: list[int]) -> np.ndarray:
    llm.reset()  # eval() then drops every cached position >= 0
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def tokenization(llm, tokenizer, prompts: list[Prompt]) -> dict:
    """llama.cpp's own tokenization of the prompts and probes against the HF tokenizer's."""
    cases = [(p.name, p.text, p.add_special) for p in prompts]
    cases += [(f"probe{i}", text, False) for i, text in enumerate(PROBES)]
    mismatches = []
    for name, text, add_special in cases:
        expected = list(tokenizer(text, add_special_tokens=add_special)["input_ids"])
        got = llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=True)
        if got != expected:
            at = next(
                (i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
                min(len(got), len(expected)),
            )
            mismatches.append(
                {
                    "case": name,
                    "text": text,
                    "first_diff_at": at,
                    "hf": expected[max(0, at - 2) : at + 4],
                    "llama_cpp": got[max(0, at - 2) : at + 4],
                }
            )
    return {"cases": len(cases), "mismatches": mismatches}


# -- llama.cpp with an image (libmtmd) ----------------------------------------------------


def _mtmd(stack: ExitStack, llm, mmproj: Path, threads: int):
    import llama_cpp.mtmd_cpp as mtmd

    from edge_et.backends.llama_cpp import log as llama_log

    params = mtmd.mtmd_context_params_default()
    params.use_gpu, params.print_timings, params.n_threads = False, False, threads
    llama_log.clear()
    ctx = mtmd.mtmd_init_from_file(str(mmproj).encode(), llm.model, params)
    if not ctx:
        raise RuntimeError(f"libmtmd cannot load {mmproj.name}: {llama_log.last_error()}")
    stack.callback(mtmd.mtmd_free, ctx)
    return ctx


def _chunks(stack: ExitStack, ctx, prompt: str, image: np.ndarray):
    import llama_cpp.mtmd_cpp as mtmd

    rgb = np.ascontiguousarray(image)
    bitmap = mtmd.mtmd_bitmap_init(
        rgb.shape[1], rgb.shape[0], rgb.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
    )
    stack.callback(mtmd.mtmd_bitmap_free, bitmap)
    chunks = mtmd.mtmd_input_chunks_init()
    stack.callback(mtmd.mtmd_input_chunks_free, chunks)
    text = mtmd.mtmd_input_text()
    encoded = prompt.encode("utf-8")
    text.text, text.text_len = encoded, len(encoded)
    text.add_special, text.parse_special = True, True
    status = mtmd.mtmd_tokenize(
        ctx, chunks, ctypes.byref(text), (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap), 1
    )
    if status != 0:
        raise RuntimeError(f"mtmd_tokenize failed with status {status}")
    return chunks


def llama_image_side(
    text_gguf: Path, mmproj: Path, prompt: str, image: np.ndarray, threads: int
) -> dict:
    """Image embeddings, the token layout (text ids and image slots) and first-token logits."""
    import llama_cpp
    import llama_cpp.mtmd_cpp as mtmd

    with ExitStack() as stack:
        # One batch holds every image token (Gemma 3 attends within the image both ways).
        llm = load_llama(text_gguf, 2048, threads, logits_all=False)
        stack.callback(llm.close)
        ctx = _mtmd(stack, llm, mmproj, threads)
        chunks = _chunks(stack, ctx, prompt, image)
        layout, embeddings = [], []
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            n = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
            if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                count = ctypes.c_size_t()
                tokens = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                layout.append([int(tokens[j]) for j in range(count.value)])
                continue
            if mtmd.mtmd_encode_chunk(ctx, chunk) != 0:
                raise RuntimeError("mtmd_encode_chunk failed")
            # n_embd_inp: Qwen3-VL's embeddings carry its deepstack features too.
            width = llama_cpp.llama_model_n_embd_inp(llm.model)
            flat = np.ctypeslib.as_array(mtmd.mtmd_get_output_embd(ctx), shape=(n * width,))
            embeddings.append(flat.reshape(n, width).copy())
            layout.append(n)  # an int: that many image slots
        new_n_past = llama_cpp.llama_pos(0)
        if (
            mtmd.mtmd_helper_eval_chunks(
                ctx, llm.ctx, chunks, 0, 0, llm.n_batch, True, ctypes.byref(new_n_past)
            )
            != 0
        ):
            raise RuntimeError("mtmd_helper_eval_chunks failed")
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)
        ).copy()
    return {"embeddings": np.concatenate(embeddings), "layout": layout, "logits": logits}


# -- comparison --------------------------------------------------------------------------


def compare_logits(ref: np.ndarray, got: np.ndarray) -> dict:
    """Differences between reference and llama.cpp logits ([positions, vocab] each).

    Positions with a NaN or infinity on either side are counted in `nonfinite` and left out
    of the other measures (one NaN row would make every statistic NaN, and NaN passes every
    `>` test); with no finite position left only the counts are returned.
    """
    finite = np.isfinite(ref).all(-1) & np.isfinite(got).all(-1)
    counts = {
        "positions": int(len(ref)),
        "nonfinite": {
            "hf": int((~np.isfinite(ref).all(-1)).sum()),
            "llama_cpp": int((~np.isfinite(got).all(-1)).sum()),
        },
    }
    if not finite.any():
        return counts
    return {**counts, **_finite_measures(ref[finite], got[finite], np.nonzero(finite)[0])}


def _finite_measures(ref: np.ndarray, got: np.ndarray, positions: np.ndarray) -> dict:
    diff = np.abs(ref.astype(np.float64) - got)
    ref_top, got_top = ref.argmax(-1), got.argmax(-1)
    rows = np.arange(len(ref))
    flips = np.nonzero(ref_top != got_top)[0]
    # How far below the reference maximum llama.cpp's pick sits: tiny gaps are near-ties.
    gaps = (ref[rows, ref_top] - ref[rows, got_top])[flips]
    top5 = np.argsort(-got, axis=-1)[:, :5]
    centered = ref - ref.mean(-1, keepdims=True)
    return {
        "compared": int(len(ref)),
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "ref_abs_max": float(np.abs(ref).max()),
        "ref_std": float(centered.std()),
        "rel_rms": float(np.sqrt((diff**2).mean()) / max(centered.std(), 1e-12)),
        "argmax_agree": int(len(ref) - len(flips)),
        "top5_agree": int(sum(ref_top[i] in top5[i] for i in rows)),
        # A constant row has no correlation (NaN); count it as none.
        "min_corr": float(np.nan_to_num(min(np.corrcoef(ref[i], got[i])[0, 1] for i in rows))),
        # Every flip, so that the judge can forgive near-ties by its own tolerance.
        "flips": [{"pos": int(positions[p]), "ref_gap": float(g)} for p, g in zip(flips, gaps)],
        "max_flip_gap": float(gaps.max()) if len(gaps) else 0.0,
    }


def summarize(per_prompt: list[dict]) -> dict:
    """All compared (finite) positions of all prompts taken together."""
    total = sum(p["positions"] for p in per_prompt)
    per_prompt = [p for p in per_prompt if p.get("compared")]
    if not per_prompt:
        return {"positions": total, "compared": 0}
    compared = sum(p["compared"] for p in per_prompt)
    return {
        "positions": total,
        "compared": compared,
        "max_abs": max(p["max_abs"] for p in per_prompt),
        "mean_abs": sum(p["mean_abs"] * p["compared"] for p in per_prompt) / compared,
        "ref_abs_max": max(p["ref_abs_max"] for p in per_prompt),
        "rel_rms": max(p["rel_rms"] for p in per_prompt),
        "argmax_agreement": sum(p["argmax_agree"] for p in per_prompt) / compared,
        "top5_agreement": sum(p["top5_agree"] for p in per_prompt) / compared,
        "min_corr": min(p["min_corr"] for p in per_prompt),
        "max_flip_gap": max(p["max_flip_gap"] for p in per_prompt),
    }


def text_report(hf_dir: Path, gguf_path: Path, *, threads: int = 2) -> dict:
    """Measure the text model `gguf_path` against `hf_dir` (no verdict; see export.parity.gguf)."""
    import torch
    from transformers import AutoTokenizer

    started = time.perf_counter()
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    prompts = text_prompts(tokenizer)
    ids = {p.name: hf_ids(tokenizer, p) for p in prompts}
    reference = _reference_logits(hf_dir, ids)
    n_ctx = 64 * (max(len(s) for s in ids.values()) // 64 + 1)
    llm = load_llama(gguf_path, n_ctx, threads)
    try:
        per_prompt = [
            {"name": name, **_compare_prompt(reference[name], llama_logits(llm, seq))}
            for name, seq in ids.items()
        ]
        report = {
            "gguf": gguf_path.name,
            "n_vocab": {"hf": next(iter(reference.values())).shape[-1], "llama_cpp": llm.n_vocab()},
            "tokenization": tokenization(llm, tokenizer, prompts),
            "prompts": per_prompt,
            "summary": summarize(per_prompt),
        }
    finally:
        llm.close()
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


def _reference_logits(hf_dir: Path, ids: dict[str, list[int]]) -> dict[str, np.ndarray]:
    model = load_hf_model(hf_dir)
    reference = {name: hf_logits(model, seq) for name, seq in ids.items()}
    del model  # free the torch weights before llama.cpp maps its own copy
    gc.collect()
    return reference


def compare_embeddings(ref: np.ndarray, got: np.ndarray, chunks: list[int] | None = None) -> dict:
    """Cosine similarity per token and over everything, plus the largest absolute difference;
    with `chunks` (tokens per libmtmd image chunk, in order: a tiled picture has one per tile
    and the global view) also the cosine of each chunk, so a wrong or repeated view shows."""
    if ref.shape != got.shape:
        return {"shape": {"hf": list(ref.shape), "llama_cpp": list(got.shape)}}
    per_chunk = {}
    if chunks and len(chunks) > 1:
        bounds = np.cumsum([0, *chunks])
        per_chunk = {
            "chunk_cosine": [_cosine(ref[a:b], got[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        }
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    dots = (ref64 * got64).sum(-1)
    norms = np.linalg.norm(ref64, axis=-1) * np.linalg.norm(got64, axis=-1)
    per_token = dots / np.maximum(norms, 1e-30)
    return {
        "shape": list(ref.shape),
        "cosine": _cosine(ref, got),
        "min_token_cosine": float(per_token.min()),
        "mean_token_cosine": float(per_token.mean()),
        "max_abs": float(np.abs(ref64 - got64).max()),
        # An all-zero reference (an untrained projector) makes every cosine meaningless.
        "ref_norm": float(np.linalg.norm(ref64)),
        "got_norm": float(np.linalg.norm(got64)),
        **per_chunk,
    }


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def first_token(ref: np.ndarray, got: np.ndarray) -> dict:
    """Greedy first token with the image on both sides, and how close the call was."""
    vocab = min(len(ref), len(got))
    ref, got = ref[:vocab], got[:vocab]
    hf_top, ll_top = int(ref.argmax()), int(got.argmax())
    return {
        "hf": hf_top,
        "llama_cpp": ll_top,
        "ref_gap": float(ref[hf_top] - ref[ll_top]),
        "max_abs": float(np.abs(ref.astype(np.float64) - got).max()),
        "ref_abs_max": float(np.abs(ref).max()),
    }


def _compare_prompt(ref: np.ndarray, got: np.ndarray) -> dict:
    vocab = min(ref.shape[-1], got.shape[-1])  # unequal sizes are judged from n_vocab
    return compare_logits(ref[:, :vocab], got[:, :vocab])
