"""What a server is started with, and the bundles and slots it opens before it listens.

Opening checks everything cheap up front, so a user mistake ends `edge-et serve` with one
`error:` line before any port is bound: each bundle named with `--bundle` is read and
validated, and its memory plan is made per slot under the whole budget (each must fit alone;
the pool, pool.py, decides at run time what stays loaded together). `--parallel N` gives each
slot 1/N of the budget, so N pipelines fit together or the server refuses to start
(`PlanRefused`). Without `--bundle`, every bundle of the bundles home is served; one that
does not load or does not fit is listed with the reason and refused per request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import edge_et
from edge_et.bundle.home import bundles_home, local_bundles
from edge_et.memory.probes import available_memory
from edge_et.memory.scheduler import resolve_budget
from edge_et.serve.hosts import is_loopback

log = logging.getLogger("edge_et.serve")


@dataclass
class ServeSettings:
    bundles: list[Path] = field(default_factory=list)  # none: every bundle of the bundles home
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    insecure: bool = False
    parallel: int = 1
    max_queue: int = 16
    keep_alive_s: float | None = 300.0  # None: never unload
    mem_budget: str | None = None
    max_body: int = 20_000_000
    max_pixels: int = 16_000_000  # a 4K frame is 8.3 MP; 16 MP is about 48 MB of RGB
    media_dir: Path | None = None
    cors_origins: list[str] = field(default_factory=list)
    allowed_hosts: list[str] = field(
        default_factory=list
    )  # Host names beyond loopback (serve/hosts.py)
    threads: int | None = None
    device: str = "cpu"
    residency: str | None = None
    warm_up: bool = True
    image_cache_bytes: int | None = None  # None: the backend's bound (llama.cpp: 256 MiB per slot)
    extraction_cache_entries: int = 4096


def check_settings(settings: ServeSettings) -> None:
    """Refuse unsafe or impossible settings with one line."""
    if not is_loopback(settings.host) and not settings.api_key and not settings.insecure:
        raise edge_et.InputError(
            f"refusing to listen on {settings.host} without an API key: anyone on the network "
            "could use it; give --api-key/--api-key-file, or --insecure to accept that"
        )
    if settings.parallel < 1 or settings.max_queue < 0 or settings.max_body < 1:
        raise edge_et.InputError("--parallel must be >= 1, --max-queue >= 0 and --max-body >= 1")
    if settings.media_dir is not None and not settings.media_dir.is_dir():
        raise edge_et.InputError(f"--allow-media-dir {settings.media_dir} is not a folder")


@dataclass
class Opened:
    """A bundle to serve, planned (nothing loaded yet); `refusal` when it cannot be served."""

    name: str
    path: Path
    bundle: edge_et.Bundle | None
    plan: object | None  # the memory plan of one slot (edge_et.memory.scheduler.Plan)
    refusal: str | None = None
    refusal_code: str = "memory_refused"  # or "bundle_invalid": it does not load at all


def open_bundles(settings: ServeSettings) -> list[Opened]:
    """Every bundle to serve, validated and planned per slot under the whole budget.

    A bundle named with `--bundle` that does not load or fit refuses the start (one line);
    one found in the bundles home is kept with its `refusal`, which its requests get.
    Raises InputError when there is nothing to serve.
    """
    explicit = bool(settings.bundles)
    found = (
        [(None, path, None) for path in settings.bundles]
        if explicit
        else [(local.name, local.path, local.problem) for local in local_bundles()]
    )
    if not found:
        raise edge_et.InputError(
            f"no bundle to serve: the bundles home {bundles_home()} holds none "
            "($EDGE_ET_BUNDLES); give --bundle DIR or NAME, or make one with "
            "`edge-et bundle create`"
        )
    mem_budget = settings.mem_budget
    if mem_budget is None and len(found) > 1:  # one budget for all: not one bundle's own
        memory = available_memory()
        mem_budget = resolve_budget(memory.available_bytes, available_source=memory.source).bytes
    opened: list[Opened] = []
    baseline = None
    for name, path, problem in found:
        try:
            if problem:
                raise edge_et.BundleError(problem)
            bundle = edge_et.Bundle.load(path)
            bundle.require("perception")
            total = edge_et.plan_bundle(
                bundle, mem_budget=mem_budget, device=settings.device, baseline=baseline
            )
            baseline = total.baseline_bytes  # measured once, before any model
            plan = slot_plan(bundle, settings, total, settings.parallel)
            if plan.decision == "refuse":
                raise _refusal(bundle, settings, total, plan)
        except edge_et.EdgeEtError as error:
            if explicit:
                raise
            log.warning("bundle %s is listed but not served: %s", name, error)
            code = "memory_refused" if isinstance(error, edge_et.PlanRefused) else "bundle_invalid"
            opened.append(Opened(name, Path(path), None, None, str(error), code))
            continue
        _log_plan(plan, settings.parallel, name or bundle.name)
        opened.append(
            Opened(name or bundle.name or Path(bundle.path).name, Path(bundle.path), bundle, plan)
        )
    names = [item.name for item in opened]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise edge_et.InputError(
            f"two bundles are named {twice[0]!r}: a request's model could not "
            "pick one; give each bundle.json its own name"
        )
    return opened


def slot_plan(bundle: edge_et.Bundle, settings: ServeSettings, total, slots: int):
    """The memory plan of one of `slots` slots: 1/slots of the budget, the runtime's baseline
    as measured for the whole server (it is one process)."""
    if slots == 1:
        return total
    return edge_et.plan_bundle(
        bundle,
        mem_budget=total.budget.bytes // slots,
        device=settings.device,
        baseline=total.baseline_bytes,
    )


def _refusal(bundle, settings: ServeSettings, total, refused) -> edge_et.PlanRefused:
    """One line: why N slots do not fit, the largest N that does, the budget N would need."""
    budget = total.budget.bytes
    if settings.parallel == 1:
        return edge_et.PlanRefused(
            f"memory plan: {refused.reason}", needed_bytes=refused.peak_bytes, budget_bytes=budget
        )
    fits = _most_slots(bundle, settings, total, settings.parallel - 1)
    instead = f"--parallel {fits} fits" if fits else "not even one slot fits"
    return edge_et.PlanRefused(
        f"--parallel {settings.parallel} does not fit the {_mib(budget)} memory budget "
        f"({total.budget.source}): each slot would get {_mib(budget // settings.parallel)} and "
        f"one slot needs at least {_mib(refused.peak_bytes)}; {instead}, or give --mem-budget "
        f"{_mib(refused.peak_bytes * settings.parallel)} or more for {settings.parallel}",
        needed_bytes=refused.peak_bytes * settings.parallel,
        budget_bytes=budget,
    )


def _most_slots(bundle, settings: ServeSettings, total, upper: int) -> int:
    """The largest slot count <= `upper` whose per-slot plan fits (0: none); a slot's budget
    only shrinks as slots are added, so a binary search finds it."""
    low, high = 0, upper
    while low < high:
        middle = (low + high + 1) // 2
        if slot_plan(bundle, settings, total, middle).decision != "refuse":
            low = middle
        else:
            high = middle - 1
    return low


def _log_plan(plan, slots: int, name: str) -> None:
    contexts = ", ".join(
        f"{role} n_ctx {fp.n_ctx} ({fp.kv_type} KV)" for role, fp in plan.stages.items()
    )
    log.info(
        "%s: %d slot(s), each planned %s under %s: %s",
        name,
        slots,
        plan.decision,
        _mib(plan.budget.bytes),
        contexts,
    )
    for degradation in plan.degradations:
        log.warning(
            "slot plan degraded: %s %s %s -> %s (%s)",
            degradation["stage"],
            degradation["what"],
            degradation["from"],
            degradation["to"],
            degradation["why"],
        )


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"
