"""`edge-et plan`: a bundle's memory plan from its model files and this device; nothing loads.

The contexts the plan may use come from the bundle (each stage's `n_ctx`, else the
pipeline's defaults, capped at the model's trained context; `--ctx` overrides every
stage). The floor below which a context is not shrunk comes from the decoding settings:

    reasoning  = generation + the description it reads + QUESTION_TOKENS
                 generation: think budget + answer budget (thinking models),
                 else decoding.reason.max_tokens; description: the extraction limit
    perception = the extraction limit + PROMPT_TEXT_TOKENS + the image: its fixed token
                 count, or FLOOR_IMAGE_TOKENS for dynamic-resolution projectors

With the defaults (think 4096 + answer 1024, extraction 1024) the reasoning floor is
6656 tokens, so an 8192 context is never halved; the demo bundle's (384 + 96) is 992.
"""

from __future__ import annotations

import os

from edge_et import backends
from edge_et.bundle.manifest import Bundle, StageSpec
from edge_et.core.decoding import stage_decoding
from edge_et.core.devices import DEVICES
from edge_et.errors import BundleError, EdgeEtError, InputError
from edge_et.memory.footprint import VisionShape
from edge_et.memory.probes import (
    available_memory,
    format_size,
    parse_size,
    runtime_baseline_bytes,
)
from edge_et.memory.profiles import get_profile, profile_budget
from edge_et.memory.scheduler import (
    Budget,
    Estimator,
    Plan,
    format_degradations,
    plan,
    resolve_budget,
)

# The context a stage gets when its bundle entry names no n_ctx (the pipeline uses these too).
DEFAULT_CTX = {"perception": 4096, "reasoning": 8192}
PROMPT_TEXT_TOKENS = 256  # extraction request and chat template around the image
QUESTION_TOKENS = 512  # question with its options, reasoning prompt, chat template
ANSWER_CUE_TOKENS = 8  # the new line and `Answer:` the cue forces
FLOOR_IMAGE_TOKENS = 1024  # llama.cpp warns Qwen-VL needs >= 1024 image tokens to ground well
EXTRACTION_STAGES = ("extract", "caption", "direct")


def requested_ctx(spec: StageSpec, override: int | None = None) -> int:
    """The context a stage asks for: `override`, its bundle `n_ctx`, or the default; capped
    at the model's trained context (as the pipeline does)."""
    wanted = override or spec.n_ctx or DEFAULT_CTX[spec.role]
    trained = spec.model_info.context_length if spec.model_info else None
    return min(wanted, trained) if trained else wanted


def extraction_limit(decoding: dict) -> int:
    """The most tokens any perception mode may generate."""
    return max(stage_decoding(stage, decoding).max_tokens for stage in EXTRACTION_STAGES)


def perception_text_reserve(decoding: dict) -> int:
    """Tokens of a perception context kept for text: the request and the generated description."""
    return extraction_limit(decoding) + PROMPT_TEXT_TOKENS


def reasoning_floor(decoding: dict, thinking: bool, flags: dict | None = None) -> int:
    """The shortest reasoning context that holds the prompt and the whole generation
    (with `flags`: a run's own budgets, as the pipeline merges them)."""
    return (
        reasoning_generation(decoding, thinking, flags)
        + extraction_limit(decoding)
        + QUESTION_TOKENS
    )


def reasoning_generation(decoding: dict, thinking: bool, flags: dict | None = None) -> int:
    """The most tokens the reasoning stage may generate."""
    if thinking:
        think = stage_decoding("think", decoding, flags)
        return think.budget + think.answer_budget
    # the reasoning, then possibly the answer cue and its line (runtime/answer_cue.py)
    reason = stage_decoding("reason", decoding, flags)
    return reason.max_tokens + reason.answer_budget + ANSWER_CUE_TOKENS


def check_reasoning_fits(n_ctx: int, decoding: dict, thinking: bool, flags: dict) -> None:
    """InputError naming the limit when a run's own budgets (`flags`) need a longer reasoning
    context than `n_ctx`, the one its model is planned with, and more than the bundle's own
    budgets do: refused before it starts rather than cut when the context fills."""
    need = reasoning_floor(decoding, thinking, flags)
    if need <= n_ctx or need <= reasoning_floor(decoding, thinking):
        return
    names = "think_budget + answer_budget" if thinking else "max_tokens + answer_budget"
    room = n_ctx - (need - reasoning_generation(decoding, thinking, flags))
    raise InputError(
        f"{names} of {reasoning_generation(decoding, thinking, flags)} tokens do not fit the "
        f"reasoning context of {n_ctx} tokens this pipeline is planned with (with the "
        f"extraction and the question, {need} tokens); {names} may be at most {max(room, 0)}"
    )


def perception_floor(decoding: dict, vision: VisionShape) -> int:
    """The shortest perception context that holds a useful image and the description."""
    image = min(vision.max_tokens, FLOOR_IMAGE_TOKENS) if vision.dynamic else vision.max_tokens
    return image + perception_text_reserve(decoding)


def stage_estimator(spec: StageSpec, decoding: dict) -> Estimator:
    """(n_ctx, kv_type) -> footprint of `spec` (its vision side included), from its files only."""
    return backends.get(spec.backend).estimator(spec, perception_text_reserve(decoding))


def bundle_budget(bundle: Bundle) -> int | None:
    """`memory.budget` of bundle.json ("6GB", "512MiB" or bytes), if the bundle sets one."""
    memory = bundle.memory
    if not isinstance(memory, dict):
        raise BundleError("bundle.json: 'memory' must be an object")
    value = memory.get("budget")
    if value is None:
        return None
    try:
        return parse_size(value)
    except EdgeEtError as exc:
        raise BundleError(f"bundle.json memory.budget: {exc}") from None


def check_device(bundle: Bundle, device: str) -> None:
    """One line when `device` is unknown, or an ONNX Runtime provider asked of a stage whose
    backend does not run on it."""
    if device not in DEVICES:
        raise InputError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}")
    for stage in bundle.stages():
        accepted = backends.get(stage.backend).devices
        if device not in accepted:
            raise InputError(
                f"--device {device} is an ONNX Runtime provider, but the {stage.role} stage "
                f"runs on {stage.backend} ({', '.join(accepted)} only); "
                "export the bundle with `edge-et export onnx`"
            )


def plan_bundle(
    bundle: str | os.PathLike | Bundle,
    *,
    mem_budget: str | int | None = None,
    device: str = "cpu",
    n_ctx: int | None = None,
    baseline: int | None = None,
    device_profile: str | None = None,
) -> Plan:
    """The memory plan for running `bundle` on this machine (see scheduler.plan), or with
    `device_profile` on that device (edge_et/memory/profiles.toml: its app memory is the budget).
    Reads file headers only; nothing is loaded.

    Args:
        bundle: a bundle folder (as `open_pipeline` takes) or a loaded `Bundle`.
        mem_budget: "6GB", "512MiB" or bytes; default the bundle's `memory.budget`, else 80% of
            the available memory.
        device: "cpu", "cuda" (layers go to the GPU as VRAM allows) or an ONNX Runtime provider.
        n_ctx: the context to plan both stages with (default: each stage's own).
        baseline: the runtime's own RSS; measured now in this process when None, so call this
            before any model is loaded (or pass the RSS measured then).
        device_profile: plan with that device's app memory as the budget (`edge-et profiles`).

    Returns:
        The `Plan`: `decision` (co-resident, swap, gpu-split or refuse), `reason`, the budget
        and each stage's footprint. A refusal is returned, not raised (`open_pipeline` raises
        `PlanRefused` for it).

    Raises:
        BundleError: the folder is not a valid bundle.
        InputError: an unknown device, profile or size, a context under 16, or both a budget
            and a profile.
    """
    if isinstance(bundle, (str, os.PathLike)):
        bundle = Bundle.load(bundle)
    elif not isinstance(bundle, Bundle):
        raise InputError(
            f"plan_bundle takes a bundle folder or a Bundle, not {type(bundle).__name__}"
        )
    check_device(bundle, device)
    if n_ctx is not None and n_ctx < 16:
        raise InputError(f"--ctx must be at least 16, got {n_ctx}")
    flag = parse_size(mem_budget) if mem_budget is not None else None
    if baseline is None:
        baseline, _ = runtime_baseline_bytes(
            lambda: [backends.get(s.backend).import_model_module() for s in bundle.stages()]
        )
    budget = (
        _profile_budget(device_profile, flag)
        if device_profile
        else _budget(flag, bundle_budget(bundle))
    )
    vram = backends.gpu_memory() if device == "cuda" else None
    stages = bundle.stages()
    # Other execution providers (NPUs) keep the weights in host memory: planned as the CPU.
    device = device if device == "cuda" else "cpu"
    estimators = {s.role: stage_estimator(s, bundle.decoding) for s in stages}
    wanted = {s.role: requested_ctx(s, n_ctx) for s in stages}
    floors = {s.role: _floor(s, bundle.decoding) for s in stages}
    return plan(estimators, wanted, floors, budget, baseline, device=device, vram=vram)


def _budget(flag: int | None, bundle: int | None) -> Budget:
    if flag is not None or bundle is not None:
        return resolve_budget(0, flag=flag, bundle=bundle)
    memory = available_memory()
    if memory.available_bytes <= 0:
        raise InputError(
            f"cannot read this device's available memory ({memory.source}); "
            "pass --mem-budget SIZE or set memory.budget in bundle.json"
        )
    return resolve_budget(memory.available_bytes, available_source=memory.source)


def _profile_budget(name: str, flag: int | None) -> Budget:
    if flag is not None:
        raise InputError("--mem-budget and --device-profile both set the budget; give one")
    return profile_budget(get_profile(name))


def _floor(spec: StageSpec, decoding: dict) -> int:
    if spec.role == "reasoning":
        return reasoning_floor(decoding, spec.thinking)
    return perception_floor(decoding, backends.get(spec.backend).vision_shape(spec))


def format_plan(result: Plan) -> list[str]:
    """Plain lines for the terminal: the decision, its reason, then one line per stage."""
    lines = [
        f"decision: {result.decision}",
        f"reason: {result.reason}",
        f"budget: {format_size(result.budget.bytes)} ({result.budget.source}); "
        f"runtime baseline {format_size(result.baseline_bytes)}; "
        f"estimated peak {format_size(result.peak_bytes)}",
    ]
    lines += format_degradations(result)
    for role, fp in result.stages.items():
        # The same split as plan --json: weights_bytes, then repack_bytes when the CPU repacks.
        parts = [f"weights {format_size(fp.weights_bytes)}"]
        if fp.repack_bytes:
            parts.append(f"repack {format_size(fp.repack_bytes)}")
        parts += [
            f"KV {format_size(fp.kv_bytes)} ({fp.kv_type})",
            f"compute {format_size(fp.compute_bytes)}",
            f"other {format_size(fp.overhead_bytes)}",
        ]
        if fp.mmproj_bytes:
            parts.append(
                f"mmproj+image {format_size(fp.mmproj_bytes)} "
                f"(images up to {fp.image_tokens} tokens)"
            )
        if fp.gpu_layers:
            parts.append(f"GPU {fp.gpu_layers} layers, {format_size(fp.vram_bytes)} VRAM")
        lines.append(
            f"{role}: n_ctx {fp.n_ctx}, total {format_size(fp.total_bytes)} = " + ", ".join(parts)
        )
    return lines
