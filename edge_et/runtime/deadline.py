"""`edge-et run --deadline SECONDS`: the largest think budget whose worst case fits the deadline.

The estimate is built from this device's measured speed of the bundle's two models (load,
image encode, prefill and decode rates), cached per bundle and device in
`<cache>/speed/<bundle>-<key>.json` and measured quickly (a few dozen tokens per model)
when absent. It is a worst case: the extraction runs to its token limit and the thought and
the answer to their budgets, so a typical run ends earlier. Decode slows as the context
grows (every step reads the KV cache too): the KV bytes beyond the measured context are
added at the measured memory bandwidth.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import replace
from pathlib import Path

from edge_et import backends
from edge_et.backends.stage_run import StageRequest
from edge_et.bundle.manifest import Bundle, StageSpec
from edge_et.core import atomic, prompts
from edge_et.core.cache import cache_root
from edge_et.core.decoding import stage_decoding
from edge_et.core.images import (
    SAMPLE_DESCRIPTION,
    SAMPLE_QUESTION,
    LoadedImage,
    load_image,
)
from edge_et.errors import InputError
from edge_et.memory.profiles import get_profile
from edge_et.runtime.measure import (
    cpu_model,
    edge_stage,
    machine_info,
    measure_bandwidth,
    open_model,
)
from edge_et.runtime.prediction import predict_speed_profile

SPEED_FORMAT = "edge-et.speed/1"
QUICK_TOKENS = 32
SAFETY = 0.9  # plan for 90% of the deadline: speed wanders with load and heat
DESCRIPTION_SLACK = 1.2  # reasoner tokens per VLM token when it re-reads the description


def speed_key(bundle: Bundle, n_threads: int | None) -> tuple[str, dict]:
    """A key for (bundle content, device, threads) and what it was made of.

    Files are named by their manifest sha256 where the bundle records one, else by size and
    modification time; the device by CPU, usable cores, threads and llama.cpp build.
    """
    files = {}
    for stage in bundle.stages():
        for name, path in ((stage.model, stage.model_path), (stage.mmproj, stage.mmproj_path)):
            if name:
                stat = path.stat()
                files[name] = stage.sha256.get(name) or f"{stat.st_size}:{stat.st_mtime_ns}"
    device = machine_info(n_threads)
    material = {
        "bundle": bundle.name,
        "files": files,
        "device": {
            k: device.get(k)
            for k in (
                "cpu",
                "machine",
                "usable_cores",
                "threads",
                "llama_cpp_python",
                "llama_cpp_system",
            )
        },
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]
    return digest, material


def speed_file(bundle: Bundle, n_threads: int | None = None, root: Path | None = None) -> Path:
    """Where the speed profile of `bundle` on this device is cached."""
    key, _ = speed_key(bundle, n_threads)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", bundle.name) or "bundle"
    return (Path(root) if root else cache_root()) / "speed" / f"{name}-{key}.json"


def device_speed(
    bundle: Bundle,
    *,
    n_threads: int | None = None,
    root: Path | None = None,
    image: LoadedImage | None = None,
    refresh: bool = False,
) -> tuple[dict, str, Path]:
    """(profile, "cache" | "measured", file): the cached profile, or a quick measurement saved."""
    path = speed_file(bundle, n_threads, root)
    if path.is_file() and not refresh:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") == SPEED_FORMAT:
                return data["profile"], "cache", path
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is measured again and overwritten
    profile = measure_speed(bundle, n_threads=n_threads, image=image)
    _, material = speed_key(bundle, n_threads)
    atomic.write_text(
        path,
        json.dumps(
            {
                **_kept_entries(path),
                "format": SPEED_FORMAT,  # never half a file
                "key": material,
                "measured_at": time.time(),
                "profile": profile,
            },
            indent=2,
        )
        + "\n",
    )
    return profile, "measured", path


def _kept_entries(path: Path) -> dict:
    """What else the profile file holds (image_tuning's settings): a new speed keeps it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def measure_speed(
    bundle: Bundle,
    *,
    n_threads: int | None = None,
    tokens: int = QUICK_TOKENS,
    image: LoadedImage | None = None,
) -> dict:
    """Load each model, run one short fixed-length stage and return its rates."""
    started = time.perf_counter()
    picture = image or _sample_image()
    profile = {}
    for role in ("perception", "reasoning"):
        spec = bundle.require(role)
        model = open_model(spec, 2048, n_threads)
        try:
            run = edge_stage(model, _quick_request(bundle, model, role, picture, tokens))
            profile[role] = {
                "load_s": model.load_s,
                "image_encode_s": run.image_encode_s or 0.0,
                "prompt_tokens": run.prompt_tokens,
                "prefill_tok_s": run.prefill_tok_s,
                "decode_tok_s": run.decode_tok_s,
                "position": run.prompt_tokens + tokens // 2,
                "base_prompt_tokens": _base_prompt_tokens(bundle, model, role),
            }
        finally:
            model.close()
    bandwidth = measure_bandwidth(array_mib=256, repeats=3, threads=n_threads)
    profile["read_bytes_per_s"] = bandwidth["read_bytes_per_s_all_threads"]
    profile["measured_s"] = time.perf_counter() - started
    return profile


def _sample_image() -> LoadedImage:
    import tempfile

    from edge_et.core.images import write_sample_image

    with tempfile.TemporaryDirectory() as tmp:
        return load_image(write_sample_image(Path(tmp) / "sample.png"))


def _quick_request(
    bundle: Bundle, model, role: str, image: LoadedImage, tokens: int
) -> StageRequest:
    if role == "perception":
        request = prompts.extraction_prompt(
            "the details", prompts.PromptSet.from_overrides(bundle.prompts)
        )
        content = model.media_marker + "\n" + request
        return StageRequest(
            content, stage_decoding("extract", bundle.decoding).sampling(0), tokens, image=image
        )
    content = prompts.reasoning_prompt(SAMPLE_DESCRIPTION, SAMPLE_QUESTION, step_by_step=True)
    return StageRequest(
        content,
        stage_decoding("reason", bundle.decoding).sampling(0),
        tokens,
        thinking=False if bundle.reasoning.thinking else None,
    )


def _base_prompt_tokens(bundle: Bundle, model, role: str) -> int:
    """Reasoning prompt tokens with an empty description: the part that does not grow."""
    if role != "reasoning":
        return 0
    from edge_et.core.chat import render_user_turn

    text = render_user_turn(
        model.chat_template,
        prompts.reasoning_prompt("", SAMPLE_QUESTION, step_by_step=True),
        enable_thinking=True if bundle.reasoning.thinking else None,
        bos_text=model.bos_text,
        eos_text=model.eos_text,
    )
    return len(model.tokenize(text=text))


# -- the estimate ----------------------------------------------------------------------------


def _decode_seconds(
    speed: dict, stage: StageSpec, n_tokens: int, start: int, bandwidth: float
) -> float:
    """n_tokens decoded from context position `start`: the measured time per token, plus the
    extra KV bytes each step reads beyond the measured context, at the measured bandwidth."""
    if n_tokens <= 0:
        return 0.0
    middle = start + n_tokens // 2
    per_position = backends.get(stage.backend).kv_bytes_per_position(stage, max(middle, 1))
    extra_kv = per_position * (middle - speed["position"])
    return n_tokens * (1 / speed["decode_tok_s"] + max(extra_kv, 0.0) / bandwidth)


def expected_seconds(
    bundle: Bundle, profile: dict, *, extract_tokens: int, reasoning_tokens: int
) -> dict:
    """Worst-case seconds of a fresh extract-think run, by part."""
    p, r = profile["perception"], profile["reasoning"]
    bandwidth = profile["read_bytes_per_s"]
    r_prompt = r["base_prompt_tokens"] + int(DESCRIPTION_SLACK * extract_tokens)
    parts = {
        "perception_load_s": p["load_s"],
        "image_encode_s": p["image_encode_s"],
        "extract_prefill_s": p["prompt_tokens"] / p["prefill_tok_s"],
        "extract_decode_s": _decode_seconds(
            p, bundle.perception, extract_tokens, p["prompt_tokens"], bandwidth
        ),
        "reasoning_load_s": r["load_s"],
        "reasoning_prefill_s": r_prompt / r["prefill_tok_s"],
        "reasoning_decode_s": _decode_seconds(
            r, bundle.reasoning, reasoning_tokens, r_prompt, bandwidth
        ),
    }
    parts["total_s"] = sum(parts.values())
    return parts


def choose_think_budget(
    bundle: Bundle,
    deadline_s: float,
    *,
    n_threads: int | None = None,
    extract_tokens: int | None = None,
    answer_tokens: int | None = None,
    max_budget: int | None = None,
    cache: Path | None = None,
    image: LoadedImage | None = None,
    safety: float = SAFETY,
    device_profile: str | None = None,
) -> tuple[int, dict]:
    """The largest budget whose worst case fits `safety` x `deadline_s`, and how it was chosen.

    `device_profile`: choose for that device (edge_et/memory/profiles.toml) from a PREDICTION
    of its speed built on this machine's measured one (edge_et/runtime/prediction.py).

    Thinking reasoners: a think budget (0 = thinking off), the answer budget on top.
    Instruct reasoners: the reasoning stage's max_tokens (at least 1), the cue's answer budget on top.
    Defaults come from the bundle's decoding: the extraction limit, the answer budget and the
    think budget (or reasoning max_tokens) as the upper bound.
    """
    if deadline_s <= 0:
        raise InputError("--deadline must be a positive number of seconds")
    thinking = bundle.require("reasoning").thinking
    bundle.require("perception")
    extract_tokens = extract_tokens or stage_decoding("extract", bundle.decoding).max_tokens
    think = stage_decoding("think" if thinking else "reason", bundle.decoding)
    # After </think>, or after the answer cue an instruct reasoner may need (runtime/answer_cue.py).
    answer = answer_tokens or think.answer_budget
    ceiling = (
        max_budget if max_budget is not None else (think.budget if thinking else think.max_tokens)
    )
    profile, source, path = device_speed(bundle, n_threads=n_threads, root=cache, image=image)
    prediction = None
    if device_profile:
        profile, prediction = predict_speed_profile(
            profile, get_profile(device_profile), here_cores=machine_info(n_threads)["threads"]
        )

    def seconds(budget: int) -> dict:
        tokens = (max(2, budget) if budget else 0) + answer if thinking else budget + answer
        return expected_seconds(
            bundle, profile, extract_tokens=extract_tokens, reasoning_tokens=tokens
        )

    floor = 0 if thinking else 1
    budget = _largest_fitting(
        lambda b: seconds(b)["total_s"] <= safety * deadline_s, floor, ceiling
    )
    if thinking and budget == 1:
        budget = 0  # a budget of 1 would still be forced to 2 tokens
    chosen = seconds(budget)
    return budget, {
        "deadline_s": deadline_s,
        "budget": budget,
        "applies_to": "think_budget" if thinking else "max_tokens",
        "expected_s": chosen["total_s"],
        "meets_deadline": chosen["total_s"] <= deadline_s,
        "worst_case": chosen,
        "extract_tokens": extract_tokens,
        "answer_tokens": answer,
        "max_budget": ceiling,
        "safety": safety,
        "speed": {
            "source": source,
            "file": str(path),
            "cpu": cpu_model(),
            **({"prediction": prediction} if prediction else {}),
        },
    }


def _largest_fitting(fits, low: int, high: int) -> int:
    """The largest b in [low, high] with fits(b) (fits is monotone), else low."""
    if high <= low or not fits(low):
        return low
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def apply_deadline(
    bundle: Bundle,
    options,
    deadline_s: float,
    *,
    n_threads: int | None = None,
    device_profile: str | None = None,
):
    """`RunOptions` with the budget chosen for `deadline_s` filled in, and the choice's info.

    The -think modes only; an explicit --think-budget / --max-tokens conflicts with it.
    """
    if not options.mode.endswith("-think"):
        raise InputError("--deadline sets the think budget, so it needs an -think mode")
    if options.think_budget is not None or options.max_tokens is not None:
        raise InputError("--deadline chooses the budget itself: drop --think-budget / --max-tokens")
    stage = "caption" if options.mode == "caption-think" else "extract"
    budget, info = choose_think_budget(
        bundle,
        deadline_s,
        n_threads=n_threads,
        answer_tokens=options.answer_budget,
        extract_tokens=stage_decoding(stage, bundle.decoding).max_tokens,
        device_profile=device_profile,
    )
    field = "think_budget" if info["applies_to"] == "think_budget" else "max_tokens"
    return replace(options, **{field: budget}), info


def describe_choice(info: dict) -> str:
    """One line for stderr: the budget chosen, the worst case expected, where the speed came from."""
    verdict = "fits" if info["meets_deadline"] else "does NOT fit even at the smallest budget"
    predicted = info["speed"].get("prediction")
    where = (
        f"PREDICTED for {predicted['prediction_for']} ({predicted['method']}; from this "
        "machine's measured speed): "
        if predicted
        else ""
    )
    return (
        f"{where}deadline {info['deadline_s']:g} s: {info['applies_to'].replace('_', ' ')} "
        f"{info['budget']} (worst case {info['expected_s']:.1f} s, {verdict}; "
        f"speed {'measured now' if info['speed']['source'] == 'measured' else 'cached'} "
        f"in {info['speed']['file']})"
    )
