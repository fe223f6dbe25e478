"""What a server is started with, and the slots it opens before it listens.

Opening checks everything cheap up front, so a user mistake ends `edge-et serve` with one
`error:` line before any port is bound: the bundle is read and validated, and the memory plan
is made per slot. `--parallel N` gives each slot 1/N of the memory budget, so N pipelines with
both models and their KV caches fit together or the server refuses to start (`PlanRefused`).
Loading the models themselves happens after the port is bound; `/health` says 503 until then.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import edge_et
from edge_et.serve.failures import ApiError
from edge_et.serve.metrics import Metrics
from edge_et.serve.scheduler import Scheduler

log = logging.getLogger("edge_et.serve")
LOOPBACK_NAMES = ("localhost",)
WARM_UP_QUESTION = "What is in the picture?"


@dataclass
class ServeSettings:
    bundle: Path
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
    allowed_hosts: list[str] = field(default_factory=list)  # Host names beyond loopback (serve/hosts.py)
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
            "could use it; give --api-key/--api-key-file, or --insecure to accept that")
    if settings.parallel < 1 or settings.max_queue < 0 or settings.max_body < 1:
        raise edge_et.InputError("--parallel must be >= 1, --max-queue >= 0 and --max-body >= 1")
    if settings.media_dir is not None and not settings.media_dir.is_dir():
        raise edge_et.InputError(f"--allow-media-dir {settings.media_dir} is not a folder")


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_slots(settings: ServeSettings) -> tuple[edge_et.Bundle, list[edge_et.Pipeline]]:
    """The bundle and one planned pipeline per slot (nothing loaded yet).

    Admission through the memory planner: every slot holds both models (or swaps them) and its
    own KV caches, so each slot is planned under 1/N of the budget. `--parallel N` that does
    not fit is refused with one line naming the largest N that does and the budget N needs.
    """
    bundle = edge_et.Bundle.load(settings.bundle)
    bundle.require("perception")
    total = edge_et.plan_bundle(bundle, mem_budget=settings.mem_budget, device=settings.device)
    plan = slot_plan(bundle, settings, total, settings.parallel)
    if plan.decision == "refuse":
        raise _refusal(bundle, settings, total, plan)
    _log_plan(plan, settings.parallel)
    return bundle, [edge_et.Pipeline(bundle, n_threads=settings.threads, plan=plan,
                                     device=settings.device, residency=settings.residency,
                                     image_cache_bytes=settings.image_cache_bytes)
                    for _ in range(settings.parallel)]


def slot_plan(bundle: edge_et.Bundle, settings: ServeSettings, total, slots: int):
    """The memory plan of one of `slots` slots: 1/slots of the budget, the runtime's baseline
    as measured for the whole server (it is one process)."""
    if slots == 1:
        return total
    return edge_et.plan_bundle(bundle, mem_budget=total.budget.bytes // slots,
                               device=settings.device, baseline=total.baseline_bytes)


def _refusal(bundle, settings: ServeSettings, total, refused) -> edge_et.PlanRefused:
    """One line: why N slots do not fit, the largest N that does, the budget N would need."""
    budget = total.budget.bytes
    if settings.parallel == 1:
        return edge_et.PlanRefused(f"memory plan: {refused.reason}", needed_bytes=refused.peak_bytes,
                                   budget_bytes=budget)
    fits = _most_slots(bundle, settings, total, settings.parallel - 1)
    instead = f"--parallel {fits} fits" if fits else "not even one slot fits"
    return edge_et.PlanRefused(
        f"--parallel {settings.parallel} does not fit the {_mib(budget)} memory budget "
        f"({total.budget.source}): each slot would get {_mib(budget // settings.parallel)} and "
        f"one slot needs at least {_mib(refused.peak_bytes)}; {instead}, or give --mem-budget "
        f"{_mib(refused.peak_bytes * settings.parallel)} or more for {settings.parallel}",
        needed_bytes=refused.peak_bytes * settings.parallel, budget_bytes=budget)


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


def _log_plan(plan, slots: int) -> None:
    contexts = ", ".join(f"{role} n_ctx {fp.n_ctx} ({fp.kv_type} KV)" for role, fp in plan.stages.items())
    log.info("%d slot(s), each planned %s under %s: %s", slots, plan.decision, _mib(plan.budget.bytes),
             contexts)
    for degradation in plan.degradations:
        log.warning("slot plan degraded: %s %s %s -> %s (%s)", degradation["stage"],
                    degradation["what"], degradation["from"], degradation["to"], degradation["why"])


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


class ServerState:
    """The server's shared objects; `scheduler` is None until the models are loaded."""

    def __init__(self, settings: ServeSettings, bundle: edge_et.Bundle,
                 pipelines: list[edge_et.Pipeline]):
        self.settings = settings
        self.bundle = bundle
        self.pipelines = pipelines
        self.metrics = Metrics()
        self.scheduler: Scheduler | None = None
        self.load_error: str | None = None
        self.on_load_failure = lambda: None  # set by the runner: stops the server
        self.model_name = bundle.name or Path(bundle.path).name
        self.started = time.time()
        self.thinking = bool(bundle.reasoning and bundle.reasoning.thinking)

    def start_loading(self) -> threading.Thread:
        thread = threading.Thread(target=self._load, name="edge-et-load", daemon=True)
        thread.start()
        return thread

    def ready(self) -> Scheduler:
        if self.scheduler is None:
            reason = self.load_error or "the models are loading"
            raise ApiError(503, reason, code="loading", headers={"Retry-After": "2"})
        return self.scheduler

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
        else:
            for pipeline in self.pipelines:
                pipeline.close()

    def _load(self) -> None:
        try:
            for pipeline in self.pipelines:
                pipeline.load()
                if self.settings.warm_up:
                    _warm_up(pipeline)
        except edge_et.EdgeEtError as error:
            self.load_error = f"loading failed: {error}"
            log.error(self.load_error)
            self.on_load_failure()
            return
        scheduler = Scheduler(self.pipelines, max_queue=self.settings.max_queue,
                              keep_alive_s=self.settings.keep_alive_s, metrics=self.metrics,
                              extraction_cache_entries=self.settings.extraction_cache_entries)
        self.metrics.bind(queue_depth=lambda: scheduler.queue_depth, busy=lambda: scheduler.busy,
                          model_loads=lambda: scheduler.model_loads,
                          resident_models=lambda: scheduler.resident_models)
        self.scheduler = scheduler
        log.info("ready: %s, %d slot(s)", self.model_name, len(self.pipelines))


def _warm_up(pipeline: edge_et.Pipeline) -> None:
    """One short perception on a blank picture, as llama-server's warm-up run: the first
    client request does not pay for first-use costs (allocations, encoder set-up)."""
    blank = np.full((64, 64, 3), 255, dtype=np.uint8)
    pipeline.perceive(blank, WARM_UP_QUESTION, edge_et.RunOptions(mode="extract",
                                                                  seed=random.randrange(2**31)))
