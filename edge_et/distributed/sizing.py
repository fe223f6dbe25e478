"""How big each stage's actors are and how many run: CPUs = llama.cpp threads, memory = the
planner's footprint of that stage, the count from the flags or from the cluster.

Ray places an actor only on a node with its `num_cpus` and `memory` free, so a node never
holds more llama.cpp threads than cores, nor more models than its memory fits.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_et.distributed.cluster import Node, RaySettings, actor_slots
from edge_et.errors import InputError
from edge_et.memory.probes import format_size
from edge_et.memory.scheduler import Plan

DEFAULT_THREADS = 1  # per actor: small models gain more from more actors than from more threads


@dataclass(frozen=True)
class StagePool:
    """The actor pool of one stage."""

    role: str  # the bundle role whose model the actors load
    threads: int  # llama.cpp n_threads, and the actor's num_cpus
    memory: int  # bytes: the stage's planned footprint plus the runtime's own
    actors: int

    def describe(self) -> str:
        return (
            f"{self.actors} {self.role} actor(s) x {self.threads} CPU, {format_size(self.memory)}"
        )


def stage_memory(plan: Plan, role: str) -> int:
    """What one actor of `role` needs: the planned footprint of its stage and the runtime."""
    return plan.stages[role].total_bytes + plan.baseline_bytes


def plan_pools(
    plan: Plan,
    roles: list[str],
    threads: int | None,
    settings: RaySettings,
    nodes: list[Node],
    flags: list[str] | None = None,
) -> list[StagePool]:
    """One pool per stage, in stage order, loading `roles[i]`; `flags[i]` names the
    `--ray-{flag}-actors` count that stage takes (default: its role). InputError in one line
    when the cluster cannot hold one actor of every stage at once (the run would wait forever).
    """
    threads = threads or DEFAULT_THREADS
    flags = flags or roles
    memory = [stage_memory(plan, role) for role in roles]
    slots = actor_slots(nodes, threads, max(memory))
    wanted = {"perception": settings.perception_actors, "reasoning": settings.reasoning_actors}
    counts = _counts([wanted.get(flag) for flag in flags], slots)
    if sum(counts) > slots:
        cpus = sum(node.cpus for node in nodes)
        asked = ", ".join(f"{n} {role}" for role, n in zip(roles, counts))
        raise InputError(
            f"the Ray cluster holds {slots} actor(s) of {threads} CPU(s) and "
            f"{format_size(max(memory))} ({cpus:g} CPUs on {len(nodes)} node(s)), "
            f"{sum(counts)} asked ({asked}); give fewer --ray-*-actors or --threads, "
            "or a bigger cluster"
        )
    return [
        StagePool(role, threads, size, count) for role, size, count in zip(roles, memory, counts)
    ]


def _counts(wanted: list[int | None], slots: int) -> list[int]:
    """The flags' counts; the rest of the slots shared out, the earlier stages rounding down
    (perception is one image encode and a short description; reasoning thinks for longer)."""
    free = [i for i, count in enumerate(wanted) if not count]
    left = max(slots - sum(count for count in wanted if count), len(free))
    counts = [count or max(1, left // max(len(free), 1)) for count in wanted]
    if free:
        counts[free[-1]] = max(1, left - sum(counts[i] for i in free[:-1]))
    return counts
