"""The image path's llama.cpp settings chosen by measurement on this device, kept in the
speed profile (`<cache>/speed/<bundle>-<key>.json`, edge_et/runtime/deadline.py).

The perception model's picture costs a vision encode (libmtmd: its flash attention and
threads) and a prefill of the image tokens (the language model: n_batch, n_ubatch, flash
attention). `tune_image_path` measures a few candidates of each against llama.cpp's defaults,
interleaved (one order, then the reverse, after an untimed warm-up) so load from other
processes hits all alike, and
keeps a candidate only when it was faster than the default in every trial and the median of
its per-trial ratios beats it by MARGIN; otherwise the defaults stay. The two parts are tuned one after the other (the encode
does not depend on the language model's batch sizes), so the sweep is small.

The pipeline opens a llama.cpp perception model with the kept settings
(`tuned_prefill`). Tune on a quiet machine: fewer threads win when other processes hold the
cores, and would then be kept for quiet runs too; the load average is recorded beside them.
Only n_ubatch up to 512 is tried, because the memory plan (backends/llama_cpp/footprint.py)
sizes compute buffers for 512.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from edge_et import backends
from edge_et.backends.image_cache import EmbeddingCache
from edge_et.backends.llama_cpp.settings import PrefillSettings, default_threads
from edge_et.bundle.manifest import Bundle, StageSpec
from edge_et.core import atomic, prompts
from edge_et.core.chat import render_user_turn
from edge_et.core.images import LoadedImage
from edge_et.errors import InputError
from edge_et.runtime.deadline import SPEED_FORMAT, speed_file, speed_key
from edge_et.runtime.plan import requested_ctx

MARGIN = 0.05  # a candidate must be 5% faster than the default to replace it
KEY = "image_path"  # the speed profile's entry


def vision_candidates(threads: int) -> list[PrefillSettings]:
    """The encoder's flash attention off vs llama.cpp's auto, and half the threads."""
    found = [PrefillSettings(), PrefillSettings(vision_flash="off")]
    if threads > 1:
        found.append(PrefillSettings(vision_threads=max(1, threads // 2)))
    return found


def prefill_candidates(vision: PrefillSettings) -> list[PrefillSettings]:
    """Batch sizes and flash attention of the image-token prefill, on the chosen encoder."""
    keep = {"vision_flash": vision.vision_flash, "vision_threads": vision.vision_threads}
    return [
        PrefillSettings(**keep),
        PrefillSettings(flash_attn=True, **keep),
        PrefillSettings(n_batch=2048, **keep),
        PrefillSettings(n_ubatch=256, **keep),
    ]


def tune_image_path(
    bundle: Bundle,
    image: LoadedImage,
    *,
    n_threads: int | None = None,
    trials: int = 2,
    root: Path | None = None,
    say=lambda line: None,
) -> dict:
    """Measure, choose, save in the speed profile and return the record (every trial kept)."""
    spec = bundle.require("perception")
    if spec.backend != "llama.cpp" or not spec.mmproj_path:
        raise InputError("image-path tuning needs a llama.cpp perception model with an mmproj")
    if trials < 1:
        raise InputError("tuning needs at least one trial")
    threads = n_threads or default_threads()
    cache = EmbeddingCache(256 * 2**20)  # the prefill part reuses the encoded picture
    prompt_set = prompts.PromptSet.from_overrides(bundle.prompts)
    content = prompts.extraction_prompt("the details", prompt_set)
    job = (spec, image, content, trials, n_threads, say)
    vision = _sweep(job, vision_candidates(threads), "image_encode_s", None)
    prefill = _sweep(job, prefill_candidates(vision["chosen"]), "prefill_s", cache)
    record = {
        "chosen": prefill["chosen"].to_json(),
        "vision": _public(vision),
        "prefill": _public(prefill),
        "trials": trials,
        "margin": MARGIN,
        "load_average": list(os.getloadavg()),
        "measured_at": time.time(),
    }
    save_tuning(bundle, record, n_threads=n_threads, root=root)
    return record


def _sweep(
    job: tuple, candidates: list[PrefillSettings], metric: str, cache: EmbeddingCache | None
) -> dict:
    """Seconds of `metric` per candidate and trial, interleaved; the winner by median ratio."""
    spec, image, content, trials, n_threads, say = job
    # Untimed first: a process's first run pays one-time costs (files into the page cache,
    # thread pools) that would otherwise count against the first candidate.
    _measure(spec, image, content, candidates[0], metric, n_threads, cache)
    seconds = {c: [] for c in candidates}
    for trial in range(trials):
        for candidate in candidates if trial % 2 == 0 else candidates[::-1]:
            seconds[candidate].append(
                _measure(spec, image, content, candidate, metric, n_threads, cache)
            )
            say(f"{metric} {seconds[candidate][-1]:.2f} s  ({candidate.label()})")
    return {"metric": metric, "seconds": seconds, **decide(seconds, candidates[0])}


def decide(seconds: dict, default) -> dict:
    """Median per-trial ratios to `default`, and the winner: the lowest median under
    1 - MARGIN among candidates faster than the default in EVERY trial (with two trials a
    median is a mean, and one lucky trial under a moving load must not choose)."""
    per_trial = {
        c: [t / d for t, d in zip(times, seconds[default])] for c, times in seconds.items()
    }
    ratios = {c: statistics.median(r) for c, r in per_trial.items()}
    steady = [c for c in seconds if c == default or max(per_trial[c]) < 1]
    best = min(steady, key=lambda c: ratios[c])
    return {"ratios": ratios, "chosen": best if ratios[best] < 1 - MARGIN else default}


def _measure(
    spec: StageSpec,
    image: LoadedImage,
    content: str,
    settings: PrefillSettings,
    metric: str,
    n_threads: int | None,
    cache: EmbeddingCache | None,
) -> float:
    model = backends.get(spec.backend).model_type()(
        model_path=str(spec.model_path),
        mmproj_path=str(spec.mmproj_path),
        n_ctx=requested_ctx(spec),
        n_threads=n_threads,
        prefill=settings,
        image_cache=cache if cache is not None else EmbeddingCache(0),
    )
    try:
        prompt = render_user_turn(
            model.chat_template,
            model.media_marker + "\n" + content,
            bos_text=model.bos_text,
            eos_text=model.eos_text,
        )
        if cache is not None and metric == "prefill_s":
            # Untimed: encodes the picture once for all candidates, and warms this model up.
            model.start(prompt=prompt, image=image)
        return getattr(model.start(prompt=prompt, image=image), metric)
    finally:
        model.close()


def _public(sweep: dict) -> dict:
    return {
        "metric": sweep["metric"],
        "chosen": sweep["chosen"].to_json(),
        "candidates": [
            {
                "settings": c.to_json(),
                "label": c.label(),
                "seconds": sweep["seconds"][c],
                "median_s": statistics.median(sweep["seconds"][c]),
                "ratio_to_default": sweep["ratios"][c],
            }
            for c in sweep["seconds"]
        ],
    }


# -- the speed profile ---------------------------------------------------------------------------


def save_tuning(
    bundle: Bundle, record: dict, *, n_threads: int | None = None, root: Path | None = None
) -> Path:
    """Write `record` into the bundle's speed profile for this device, keeping what it holds."""
    path = speed_file(bundle, n_threads, root)
    data = _read(path) or {"format": SPEED_FORMAT, "key": speed_key(bundle, n_threads)[1]}
    data[KEY] = record
    atomic.write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def tuned_prefill(
    bundle: Bundle, *, n_threads: int | None = None, root: Path | None = None
) -> PrefillSettings | None:
    """The kept settings for this bundle on this device, or None (never tuned, or unreadable)."""
    record = (_read(speed_file(bundle, n_threads, root)) or {}).get(KEY)
    try:
        return PrefillSettings.from_json(record["chosen"]) if record else None
    except (KeyError, TypeError, ValueError):
        return None  # a damaged entry: the defaults, as if never tuned


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == SPEED_FORMAT else None
