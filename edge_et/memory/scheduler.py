"""Residency plan: which models stay loaded, where, at what context, or a refusal.

Pure decisions over footprints (`footprint.StageFootprint`), a budget and a device; nothing
here reads the machine or loads a model, so every branch is unit-tested with made-up numbers.

Decision order (the first that fits wins; a fit is `need <= budget`, so exactly at the
budget fits):
1. gpu-split — device cuda with VRAM: reasoning layers first (it decodes the most tokens),
   then perception, as many as VRAM minus a runtime reserve holds; the host part is then
   planned co-resident or swapped as below.
2. co-resident — both models loaded: baseline + Σ stage totals, with an f16 KV cache.
3. swap — load, run, free per stage: baseline + the larger stage, f16 KV at the asked context.
   Swap degrades nothing: a single run loads each model once either way, and a batch under
   swap loads each model once too, so it comes before any quality-reducing option.
4. swap with degradations, per stage, only for the stage that does not fit: a q8_0 KV cache,
   then a shorter context (powers of two down to its floor, f16 then q8_0 at each length:
   a longer context beats a smaller cache type, q8_0 keys/values are near-lossless while a
   short context refuses long inputs). Co-resident with q8_0 is never chosen: swap's room is
   larger, so it needs at most the same degradations, usually fewer.
5. refuse — naming the need, the budget and what would fit (a budget, a quant, a context).

Every degradation applied is listed in `Plan.degradations` (stage, what, from, to, why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from edge_et.errors import PlanRefused
from edge_et.memory.footprint import StageFootprint
from edge_et.memory.probes import VRAM, MiB, format_size

DECISIONS = ("co-resident", "swap", "gpu-split", "refuse")
KV_CHOICES = ("f16", "q8_0")
DEFAULT_BUDGET_SHARE = 0.80  # like Ollama: plan within 80% of the memory available now
GPU_RUNTIME_RESERVE = 512 * MiB  # CUDA context + cuBLAS workspace (not measured here)
# Nominal bits per weight of llama.cpp quant types (its quantize docs), to scale weights.
QUANT_BPW = (
    ("Q8_0", 8.5),
    ("Q6_K", 6.56),
    ("Q5_K_M", 5.69),
    ("Q4_K_M", 4.89),
    ("Q3_K_M", 3.91),
    ("Q2_K", 2.96),
)

Estimator = Callable[[int, str], StageFootprint]  # (n_ctx, kv_type) -> footprint


@dataclass(frozen=True)
class Budget:
    """How many bytes the plan may use, and why that many."""

    bytes: int
    source: str


@dataclass
class Plan:
    """A residency decision with the numbers behind it (JSON via `to_dict`)."""

    decision: str
    reason: str
    budget: Budget
    baseline_bytes: int
    stages: dict[str, StageFootprint]
    peak_bytes: int
    device: str = "cpu"
    host_residency: str | None = None  # gpu-split: how the host part is held
    vram: VRAM | None = None
    suggestions: list[str] = field(default_factory=list)
    degradations: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = {
            "decision": self.decision,
            "reason": self.reason,
            "degradations": list(self.degradations),
            "budget_bytes": self.budget.bytes,
            "budget_source": self.budget.source,
            "baseline_bytes": self.baseline_bytes,
            "peak_bytes": self.peak_bytes,
            "device": self.device,
            "stages": {role: fp.to_dict() for role, fp in self.stages.items()},
        }
        if self.host_residency:
            data["host_residency"] = self.host_residency
        if self.vram is not None:
            data["vram_free_bytes"] = self.vram.free_bytes
            data["vram_total_bytes"] = self.vram.total_bytes
        if self.suggestions:
            data["suggestions"] = self.suggestions
        return data


def resolve_budget(
    available_bytes: int,
    *,
    flag: int | None = None,
    bundle: int | None = None,
    available_source: str = "available memory",
) -> Budget:
    """The flag wins, then the bundle's `memory.budget`, then 80% of available memory."""
    if flag is not None:
        return Budget(flag, "--mem-budget")
    if bundle is not None:
        return Budget(bundle, "bundle.json memory.budget")
    share = int(available_bytes * DEFAULT_BUDGET_SHARE)
    return Budget(
        share, f"{DEFAULT_BUDGET_SHARE:.0%} of {format_size(available_bytes)} ({available_source})"
    )


def context_ladder(requested: int, floor: int) -> list[int]:
    """`requested`, then the powers of two below it that are still >= `floor`."""
    ladder = [requested]
    size = 1 << (requested.bit_length() - 1)
    if size == requested:
        size //= 2
    while size >= max(floor, 1):
        ladder.append(size)
        size //= 2
    return ladder


def plan(
    estimators: dict[str, Estimator],
    requested_ctx: dict[str, int],
    floors: dict[str, int],
    budget: Budget,
    baseline: int,
    *,
    device: str = "cpu",
    vram: VRAM | None = None,
) -> Plan:
    """Decide residency for the stages in `estimators` (see the module docstring)."""
    full = {role: estimators[role](requested_ctx[role], "f16") for role in estimators}
    if device == "cuda" and vram is not None:
        split = _gpu_plan(estimators, requested_ctx, floors, budget, baseline, vram)
        if split is not None:
            return split
    host = _host_plan(estimators, requested_ctx, floors, budget, baseline)
    if host is not None:
        if device == "cuda":
            host.device = "cuda"
            host.vram = vram
            host.reason += (
                "; no GPU offload: llama.cpp has no GPU build or no GPU was found"
                if vram is None
                else f"; nothing offloaded: {format_size(vram.free_bytes)} of VRAM free"
            )
        return host
    return _refuse(estimators, requested_ctx, floors, full, budget, baseline, device, vram)


def _host_plan(estimators, requested_ctx, floors, budget, baseline) -> Plan | None:
    stages = {role: est(requested_ctx[role], "f16") for role, est in estimators.items()}
    need = baseline + sum(fp.total_bytes for fp in stages.values())
    if need <= budget.bytes and len(stages) > 1:
        return Plan(
            "co-resident",
            f"both models fit loaded together: {_of(need, budget)}",
            budget,
            baseline,
            stages,
            need,
        )
    stages = {}
    for role, est in estimators.items():
        choice = _fit_stage(
            est, context_ladder(requested_ctx[role], floors[role]), budget.bytes - baseline
        )
        if choice is None:
            return None
        stages[role] = choice
    need = baseline + max(fp.total_bytes for fp in stages.values())
    notes = _shrink_notes(stages, requested_ctx)
    if len(stages) == 1:
        result = Plan(
            "co-resident",
            f"the one model fits: {_of(need, budget)}{notes}",
            budget,
            baseline,
            stages,
            need,
        )
    else:
        together = format_size(_sum_full(estimators, requested_ctx, baseline))
        result = Plan(
            "swap",
            f"the models do not fit together ({together} at f16); one at a "
            f"time: {_of(need, budget)}{notes}",
            budget,
            baseline,
            stages,
            need,
        )
    result.degradations = degradations(stages, requested_ctx, budget.bytes - baseline)
    return result


def degradations(
    stages: dict[str, StageFootprint], requested_ctx: dict[str, int], room: int
) -> list[dict]:
    """Every quality-reducing choice in `stages` against what was asked (f16 KV at the
    requested context), each with the reason: the stage's need at the better setting vs `room`."""
    applied = []
    for role, fp in stages.items():
        why = (
            f"{role} at f16, n_ctx {requested_ctx[role]} would not fit the {format_size(room)} "
            "left after the runtime, even alone"
        )
        if fp.kv_type != "f16":
            applied.append(
                {"stage": role, "what": "kv_cache", "from": "f16", "to": fp.kv_type, "why": why}
            )
        if fp.n_ctx < requested_ctx[role]:
            applied.append(
                {
                    "stage": role,
                    "what": "n_ctx",
                    "from": requested_ctx[role],
                    "to": fp.n_ctx,
                    "why": why
                    if fp.kv_type == "f16"
                    else f"{role} at n_ctx {requested_ctx[role]} would not fit even with a "
                    f"q8_0 KV cache ({format_size(room)} left after the runtime)",
                }
            )
    return applied


def format_degradations(result: Plan) -> list[str]:
    """One line per degradation the plan applied (none when it keeps the asked quality)."""
    return [
        f"degraded: {d['stage']} {d['what']} {d['from']} -> {d['to']} ({d['why']})"
        for d in result.degradations
    ]


def _fit_stage(estimate: Estimator, ladder: list[int], room: int) -> StageFootprint | None:
    """The longest context (f16 before q8_0 at each length) whose footprint fits in `room`."""
    for n_ctx in ladder:
        for kv in KV_CHOICES:
            footprint = estimate(n_ctx, kv)
            if footprint.total_bytes <= room:
                return footprint
    return None


def _sum_full(estimators, requested_ctx, baseline) -> int:
    return baseline + sum(est(requested_ctx[r], "f16").total_bytes for r, est in estimators.items())


def _shrink_notes(stages: dict[str, StageFootprint], requested_ctx: dict[str, int]) -> str:
    notes = []
    for role, fp in stages.items():
        if fp.n_ctx < requested_ctx[role]:
            notes.append(
                f"{role} at n_ctx {fp.n_ctx} (asked {requested_ctx[role]}), KV {fp.kv_type}"
            )
        elif fp.kv_type != "f16":
            notes.append(f"{role} with a {fp.kv_type} KV cache (f16 would not fit)")
    return ("; " + "; ".join(notes)) if notes else ""


def _of(need: int, budget: Budget) -> str:
    return f"{format_size(need)} of a {format_size(budget.bytes)} budget"


# -- GPU split ---------------------------------------------------------------------------------


def gpu_layers_for(fp: StageFootprint, room: int) -> tuple[int, int]:
    """The most layers (llama.cpp's n_gpu_layers; n_layer + 1 adds the output) that fit `room`.

    A layer needs its weights and its KV share; any offload adds the reserved compute buffer
    (on a GPU the whole reservation is allocated, logits for every ubatch token included).
    llama.cpp offloads the last layers first. Returns (layers, VRAM bytes).
    """
    n_layer = len(fp.layer_weights)
    if n_layer == 0 or room <= 0:
        return 0, 0
    kv_per_layer = fp.kv_bytes // n_layer
    for layers in range(n_layer + 1, 0, -1):
        repeating = min(layers, n_layer)
        need = (
            sum(fp.layer_weights[n_layer - repeating :])
            + kv_per_layer * repeating
            + fp.reserved_compute_bytes
            + (fp.output_weights if layers > n_layer else 0)
        )
        if need <= room:
            return layers, need
    return 0, 0


def offload(fp: StageFootprint, layers: int, vram_bytes: int) -> StageFootprint:
    """`fp` with `layers` on the GPU: their weights and KV leave host memory."""
    n_layer = len(fp.layer_weights)
    repeating = min(layers, n_layer)
    moved = sum(fp.layer_weights[n_layer - repeating :]) if repeating else 0
    kv_moved = fp.kv_bytes // n_layer * repeating if n_layer else 0
    return replace(
        fp,
        gpu_layers=layers,
        vram_bytes=vram_bytes,
        weights_bytes=max(fp.weights_bytes - moved, 0),
        kv_bytes=max(fp.kv_bytes - kv_moved, 0),
    )


def _gpu_plan(estimators, requested_ctx, floors, budget, baseline, vram: VRAM) -> Plan | None:
    room = vram.free_bytes - GPU_RUNTIME_RESERVE
    placed: dict[str, Estimator] = {}
    where = []
    for role in [r for r in ("reasoning", "perception") if r in estimators]:
        fp = estimators[role](requested_ctx[role], "f16")
        layers, used = gpu_layers_for(fp, room)
        room -= used
        placed[role] = _offloaded(estimators[role], layers, used)
        where.append(f"{role} {layers}/{len(fp.layer_weights) + 1} layers ({format_size(used)})")
    placed.update({r: est for r, est in estimators.items() if r not in placed})
    if not any(placed[r](requested_ctx[r], "f16").gpu_layers for r in placed):
        return None
    host = _host_plan(placed, requested_ctx, floors, budget, baseline)
    if host is None:
        return None
    return Plan(
        "gpu-split",
        f"on the GPU ({vram.name}, {format_size(vram.free_bytes)} free): "
        f"{', '.join(where)}; host part {host.decision}: {host.reason.split(': ', 1)[-1]}",
        budget,
        baseline,
        host.stages,
        host.peak_bytes,
        device="cuda",
        host_residency=host.decision,
        vram=vram,
        degradations=host.degradations,
    )


def _offloaded(estimate: Estimator, layers: int, used: int) -> Estimator:
    return lambda n_ctx, kv: (
        offload(estimate(n_ctx, kv), layers, used) if layers else estimate(n_ctx, kv)
    )


# -- refusal -----------------------------------------------------------------------------------


def _refuse(estimators, requested_ctx, floors, full, budget, baseline, device, vram) -> Plan:
    smallest = {
        role: est(context_ladder(requested_ctx[role], floors[role])[-1], "q8_0")
        for role, est in estimators.items()
    }
    need = baseline + max(fp.total_bytes for fp in smallest.values())
    swapped = baseline + max(fp.total_bytes for fp in full.values())
    together = _sum_full(estimators, requested_ctx, baseline)
    suggestions = [
        f"a budget of at least {format_size(swapped)} (swap at the requested "
        f"context) or {format_size(together)} (co-resident)"
    ]
    room = budget.bytes - baseline
    for role, fp in smallest.items():
        if fp.total_bytes <= room:
            continue
        quant = _smaller_quant(fp, room)
        if quant:
            suggestions.append(quant)
        shorter = _shorter_context(estimators[role], fp.n_ctx, room)
        if shorter:
            suggestions.append(
                f"{role} at n_ctx {shorter} (below the floor of "
                f"{floors[role]} that its decoding settings need)"
            )
    if len(suggestions) == 1:
        suggestions.append("no smaller quant or shorter context alone would fit this budget")
    worst = max(smallest, key=lambda r: smallest[r].total_bytes)
    reason = (
        f"does not fit: even one model at a time with the shortest allowed context and a "
        f"q8_0 KV cache needs {format_size(need)} ({worst} at n_ctx "
        f"{smallest[worst].n_ctx}: {format_size(smallest[worst].total_bytes)}, + runtime "
        f"{format_size(baseline)}), budget {format_size(budget.bytes)}; would fit: "
        + "; ".join(suggestions)
    )
    return Plan(
        "refuse",
        reason,
        budget,
        baseline,
        full,
        need,
        device=device,
        vram=vram,
        suggestions=suggestions,
    )


def _smaller_quant(fp: StageFootprint, room: int) -> str | None:
    """The largest quant (by bits per weight) under the current one whose scaled weights fit."""
    if not fp.n_params:
        return None
    current = fp.weights_bytes * 8 / fp.n_params
    for name, bpw in QUANT_BPW:
        if bpw >= current - 0.05:
            continue
        weights = int(fp.weights_bytes * bpw / current)
        repack = int(fp.repack_bytes * bpw / current)
        if fp.total_bytes - fp.weights_bytes - fp.repack_bytes + weights + repack <= room:
            return (
                f"{fp.role} quantized to {name} (~{bpw} bits/weight: weights "
                f"{format_size(fp.weights_bytes)} -> ~{format_size(weights)})"
            )
    return None


def _shorter_context(estimate: Estimator, below: int, room: int) -> int | None:
    size = 1 << (below.bit_length() - 1)
    size = size // 2 if size == below else size
    while size >= 256:
        if estimate(size, "q8_0").total_bytes <= room:
            return size
        size //= 2
    return None


def require_runnable(result: Plan) -> Plan:
    """`result`, or the refusal as a one-line PlanRefused (exit code 2) before anything loads."""
    if result.decision == "refuse":
        raise PlanRefused(
            f"memory plan: {result.reason}",
            needed_bytes=result.peak_bytes,
            budget_bytes=result.budget.bytes,
        )
    return result
