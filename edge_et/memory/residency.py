"""Which models a many-bundle server keeps loaded: a pure policy over sizes, users and a clock.

A server of several bundles loads models when a request needs them and unloads them when
memory is short or they sit idle. Every decision is made here, from numbers handed in (the
loaded set with each model's planned bytes, how many runs use it now, when it was last used,
the room the budget leaves after the runtime), so every branch is tested without a model, as
Ollama's scheduler (server/sched.go) is. The server's pool (edge_et/serve/pool.py) only carries
the decisions out.

The rules:
- A model is keyed by its files' sha256 (and the settings it is loaded with): two bundles that
  use the same file share one loaded model, counted once.
- `place`: a model that is loaded is used as it is. One that is not is loaded when it fits in
  what is free; else the idle models (no run uses them) are unloaded least recently used first
  until it fits; when even that is not enough (runs hold the rest) the caller waits, it never
  overcommits. A model larger than the whole room is refused at once, with the figures.
- A model in use is never unloaded (by `place` or by `expired`).
- `expired`: idle models whose keep-alive has run out.
- `residency`: per request, whether its stages' models fit together (co-resident: both stay
  loaded, only other bundles' idle models are unloaded) or only one at a time (swap: loading
  the second unloads the first when nothing else is idle), or not even alone (refuse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from edge_et.memory.probes import format_size

ACTIONS = ("ready", "load", "wait", "refuse")


@dataclass(frozen=True)
class Resident:
    """A loaded model as the policy sees it.

    key: identity of the loaded model (its files' sha256 and load settings).
    bytes: its planned footprint (weights, KV cache, compute, projector).
    users: runs holding it now (a model with users is never unloaded).
    last_used: clock reading when its last user let go (or it was loaded).
    """

    key: str
    bytes: int
    users: int = 0
    last_used: float = 0.0


@dataclass(frozen=True)
class Placement:
    """What to do for one wanted model.

    action: "ready" (loaded: use it), "load" (unload `evict` in this order, then load),
        "wait" (runs hold the memory it needs: ask again when one lets go),
        "refuse" (larger than the whole room: it can never load).
    evict: keys to unload first, least recently used first.
    reason: one line with the figures.
    """

    action: str
    evict: tuple[str, ...] = ()
    reason: str = ""


def place(loaded: Sequence[Resident], key: str, size: int, room: int) -> Placement:
    """How to get model `key` (`size` bytes) loaded within `room` bytes.

    Args:
        loaded: the models loaded now (and those being loaded, with a user each).
        key: the wanted model.
        size: its planned bytes.
        room: the memory budget left after the runtime's own baseline.
    Returns:
        a Placement (see its fields); never an overcommit.
    """
    if any(model.key == key for model in loaded):
        return Placement("ready", reason="already loaded")
    if size > room:
        return Placement(
            "refuse",
            reason=f"needs {format_size(size)}, more than the "
            f"{format_size(room)} the budget leaves after the runtime, even alone",
        )
    free = room - sum(model.bytes for model in loaded)
    if size <= free:
        return Placement("load", reason=f"fits in the {format_size(free)} free")
    evict: list[str] = []
    for model in sorted((m for m in loaded if m.users == 0), key=lambda m: m.last_used):
        if free >= size:
            break
        evict.append(model.key)
        free += model.bytes
    if free >= size:
        return Placement(
            "load",
            tuple(evict),
            f"fits after unloading {len(evict)} idle model(s), least recently used first",
        )
    held = sum(model.bytes for model in loaded if model.users)
    return Placement(
        "wait",
        reason=f"needs {format_size(size)}; runs hold {format_size(held)} of "
        f"{format_size(room)}: waits for one to finish",
    )


def expired(loaded: Sequence[Resident], now: float, keep_alive_s: float | None) -> list[str]:
    """Keys of the idle models unused for `keep_alive_s` seconds or more (None: never)."""
    if keep_alive_s is None:
        return []
    return [
        model.key for model in loaded if model.users == 0 and now - model.last_used >= keep_alive_s
    ]


def next_expiry(loaded: Sequence[Resident], keep_alive_s: float | None) -> float | None:
    """Clock reading when the next idle model expires (None: nothing will)."""
    if keep_alive_s is None:
        return None
    times = [model.last_used + keep_alive_s for model in loaded if model.users == 0]
    return min(times) if times else None


@dataclass(frozen=True)
class RequestResidency:
    """How one request's stages share memory, with the figures (see `residency`)."""

    decision: str  # co-resident | swap | refuse
    need_bytes: int  # both models (co-resident) or the larger one
    room_bytes: int
    reason: str
    models: dict[str, int] = field(default_factory=dict)  # key -> bytes, each counted once


def residency(stages: Mapping[str, tuple[str, int]], room: int) -> RequestResidency:
    """Whether a request's models fit together, one at a time, or not at all.

    Args:
        stages: role -> (model key, planned bytes) of the stages this request runs (a model
            two stages share is counted once).
        room: the budget left after the runtime's baseline.
    Returns:
        co-resident when all fit together, swap when each fits alone, else refuse; the reason
        names the bytes needed and the room.
    """
    models: dict[str, int] = {}
    for key, size in stages.values():
        models[key] = max(size, models.get(key, 0))
    together = sum(models.values())
    largest = max(models.values(), default=0)
    names = ", ".join(f"{role} {format_size(size)}" for role, (_, size) in stages.items())
    if together <= room:
        return RequestResidency(
            "co-resident",
            together,
            room,
            f"{names}: {format_size(together)} together in a room of {format_size(room)}",
            models,
        )
    if largest <= room:
        return RequestResidency(
            "swap",
            largest,
            room,
            f"{names}: {format_size(together)} together exceed the room of "
            f"{format_size(room)}; one at a time",
            models,
        )
    return RequestResidency(
        "refuse",
        largest,
        room,
        f"{names}: the largest alone needs {format_size(largest)}, more than "
        f"the {format_size(room)} the memory budget leaves after the runtime",
        models,
    )
