"""What `edge-et bench` measures, one piece at a time: a stage through edge-et and this
machine's memory read bandwidth. The bare baselines beside the edge-et runs, and the bytes a
decode step must read, are each backend's own (`BackendSpec.bare_runner`, `.decode_reads`).
"""

from __future__ import annotations

import ctypes
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edge_et import backends
from edge_et.backends.base import CachesImages
from edge_et.backends.stage_run import StageRequest, StageRun
from edge_et.core.chat import render_user_turn
from edge_et.core.host import cpu_model, usable_cores
from edge_et.core.images import SAMPLE_DESCRIPTION
from edge_et.core.stats import StageStats
from edge_et.runtime.generation import generate, think_then_answer
from edge_et.runtime.plan import DEFAULT_CTX

# -- edge-et ---------------------------------------------------------------------------------


def open_model(spec, need: int, n_threads: int | None = None, *, n_gpu_layers: int = 0):
    """Load a stage's model as the pipeline does, its context raised to `need` tokens where
    the model was trained for that many; `n_gpu_layers` go to the GPU (-1: all)."""
    wanted = max(spec.n_ctx or DEFAULT_CTX[spec.role], need)
    trained = spec.model_info.context_length if spec.model_info else None
    return backends.get(spec.backend).model_type()(
        model_path=str(spec.model_path),
        n_ctx=min(wanted, trained) if trained else wanted,
        mmproj_path=str(spec.mmproj_path) if spec.mmproj_path else None,
        n_threads=n_threads,
        n_gpu_layers=n_gpu_layers,
    )


def render_prompt(model, request: StageRequest) -> str:
    """The prompt text exactly as the pipeline renders it for this request."""
    return render_user_turn(
        model.chat_template,
        request.content,
        enable_thinking=request.thinking,
        bos_text=model.bos_text,
        eos_text=model.eos_text,
    )


def forget_images(model) -> None:
    """Drop the backend's cached image embeddings, so every run pays its own encode."""
    if isinstance(model, CachesImages):
        model.forget_images()


class _FirstToken:
    """Notes when the first token is sampled, then steps out of the way.

    It shadows `model.sample` on the instance for one call only, so the token loop runs
    afterwards exactly as it does in `edge-et run`.
    """

    def __init__(self, model):
        self.model, self.at = model, None
        self._sample = model.sample
        model.sample = self._first

    def _first(self, **kwargs):
        token = self._sample(**kwargs)
        self.at = time.perf_counter()
        self.remove()
        return token

    def remove(self) -> None:
        if "sample" in vars(self.model):
            del self.model.sample


def edge_stage(model, request: StageRequest) -> StageRun:
    """Run `request` through edge-et: chat template, `model.start`, the generation loop."""
    forget_images(model)
    started = time.perf_counter()
    prompt = render_prompt(model, request)
    begun = model.start(prompt=prompt, image=request.image)
    first, stats = _FirstToken(model), StageStats()
    try:
        if request.think_budget:
            out = think_then_answer(
                model,
                sampling=request.sampling,
                think_budget=request.think_budget,
                answer_budget=request.tokens,
                stats=stats,
                ignore_eos=True,
            )
        else:
            out = generate(
                model,
                sampling=request.sampling,
                max_tokens=request.tokens,
                stats=stats,
                ignore_eos=True,
            )
    finally:
        first.remove()
    ended = time.perf_counter()
    first_at = first.at or ended
    return StageRun(
        prompt_tokens=begun.prompt_tokens,
        image_encode_s=begun.image_encode_s,
        prefill_s=begun.prefill_s,
        ttft_s=first_at - started,
        decode_s=ended - first_at,
        tokens=stats.generated_tokens + stats.forced_tokens,
        requested=request.requested,
        e2e_s=ended - started,
        stop_reason=out.stop_reason,
        text=out.text,
    )


def stand_in_description(model, n_tokens: int) -> str:
    """A description of about `n_tokens` of `model`'s tokens: the sample picture's description,
    repeated and cut. The think stage reads this rather than the VLM's text, so its prompt is
    as long as a real extraction of that length; a random-weight VLM writes noise that its
    tokenizer may split into many times more tokens."""
    text = SAMPLE_DESCRIPTION
    while len(model.tokenize(text=text)) < n_tokens:
        text += " " + SAMPLE_DESCRIPTION
    pieces = b"".join(model.piece(token=t) for t in model.tokenize(text=text)[:n_tokens])
    return pieces.decode("utf-8", errors="ignore").strip()


# -- memory ---------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux `clear_refs` 5) so a stage's own peak can be read.

    False where the kernel does not allow it: then peaks are the process's so far. First the
    C heap gives back what freed models left (glibc's malloc_trim): otherwise a stage's peak
    starts from the memory of models closed before it (another bundle's, in a comparison).
    """
    _trim_heap()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim this way


def measure_bandwidth(
    *, array_mib: int = 256, repeats: int = 7, threads: int | None = None
) -> dict:
    """Memory read bandwidth in bytes/s: a float64 sum over an array far larger than the
    caches, one thread and `threads` threads (numpy releases the GIL in the sum), median of
    `repeats`. The array is touched once first so page faults are not timed."""
    threads = threads or usable_cores()
    data = np.ones(array_mib * 2**20 // 8, dtype=np.float64)
    parts = np.array_split(data, threads)
    with ThreadPoolExecutor(threads) as pool:
        single = _median_time(data.sum, repeats)
        parallel = _median_time(lambda: list(pool.map(np.sum, parts)), repeats)
    return {
        "read_bytes_per_s_1_thread": data.nbytes / single,
        "read_bytes_per_s_all_threads": data.nbytes / parallel,
        "threads": threads,
        "array_mib": array_mib,
        "repeats": repeats,
        "method": "numpy float64 sum, median of repeats",
    }


def _median_time(work, repeats: int) -> float:
    work()  # first touch and warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# -- this machine ---------------------------------------------------------------------------


def gpu_model() -> str | None:
    """The first NVIDIA GPU's name as the driver reports it (no CUDA context is created), or None."""
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            for line in info.read_text().splitlines():
                if line.startswith("Model:"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            continue
    return None


def machine_info(n_threads: int | None = None) -> dict:
    """CPU, cores, RAM, OS and the backends' builds: what the numbers depend on."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = None
    info = {
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "threads": n_threads or usable_cores(),
        "ram_bytes": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "gpu": gpu_model(),
    }
    for backend in backends.specs():
        info.update(backend.build_info())
    return info
