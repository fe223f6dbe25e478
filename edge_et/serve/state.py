"""The running server's state: the bundles it serves, each with its slots' pipelines, its
queue and memory figures, and the start-up load that `/health` reports on.

What a server is started with, and how its bundles are opened and planned, is opening.py.
With one bundle its models load after the port is bound (`/health` says 503 until then);
with several they load when a request first needs them.
"""

from __future__ import annotations

import logging
import random
import threading
import time

import numpy as np

import edge_et
from edge_et.memory.probes import current_rss, process_peak_rss
from edge_et.memory.residency import RequestResidency, residency
from edge_et.serve.failures import ApiError
from edge_et.serve.jobs import Job
from edge_et.serve.metrics import Metrics
from edge_et.serve.opening import Opened, ServeSettings
from edge_et.serve.pool import ModelPool, model_key
from edge_et.serve.scheduler import Scheduler

log = logging.getLogger("edge_et.serve")
WARM_UP_QUESTION = "What is in the picture?"


PERCEPTION_ONLY = ("extract", "direct")  # modes that never load the reasoning model


class ServedBundle:
    """One bundle the server answers for: its pipelines (one per slot), queue and memory figures.
    A chat request reads it as it read the one-bundle server's state."""

    def __init__(self, server: ServerState, opened: Opened):
        self.server = server
        self.settings, self.metrics = server.settings, server.metrics
        self.model_name, self.path = opened.name, opened.path
        self.bundle, self.plan, self.refusal = opened.bundle, opened.plan, opened.refusal
        self.refusal_code = opened.refusal_code
        self.thinking = bool(
            self.bundle and self.bundle.reasoning and self.bundle.reasoning.thinking
        )
        self.scheduler: Scheduler | None = None
        self.pipelines: list[edge_et.Pipeline] = []
        self.keys: list[dict[str, str]] = []  # per slot: role -> model key in the pool
        self.sizes: dict[str, int] = {}  # role -> planned bytes of its model (one slot)
        self.residency: RequestResidency | None = None
        if self.bundle is not None:
            self._open_slots(server.pool)

    def _open_slots(self, pool: ModelPool) -> None:
        settings, plan = self.settings, self.plan
        room = plan.budget.bytes - plan.baseline_bytes
        self.sizes = {role: fp.total_bytes for role, fp in plan.stages.items()}
        for slot in range(settings.parallel):
            keys = {}
            for spec in self.bundle.stages():
                fp = plan.stages[spec.role]
                load = {
                    "n_ctx": fp.n_ctx,
                    "kv": fp.kv_type,
                    "gpu": fp.gpu_layers,
                    "image_tokens": fp.image_tokens,
                    "threads": settings.threads,
                    "device": settings.device,
                    "image_cache": settings.image_cache_bytes
                    if spec.role == "perception"
                    else None,
                }
                key, label = model_key(self.bundle.path, spec, load, slot)
                pool.register(key, label, fp.total_bytes, self.model_name)
                keys[spec.role] = key
            self.keys.append(keys)
        self.residency = residency(
            {role: (self.keys[0][role], size) for role, size in self.sizes.items()}, room
        )
        swap = (settings.residency or self.residency.decision) == "swap"
        for keys in self.keys:
            # The pipeline borrows one model at a time (it never holds one while it waits for
            # another, so borrowers cannot deadlock); the pool keeps both loaded when they fit.
            self.pipelines.append(
                edge_et.Pipeline(
                    self.bundle,
                    n_threads=settings.threads,
                    plan=plan,
                    device=settings.device,
                    residency="swap",
                    image_cache_bytes=settings.image_cache_bytes,
                    models=pool.client(keys, swap=swap),
                )
            )

    @property
    def swaps(self) -> bool:
        return (self.settings.residency or (self.residency and self.residency.decision)) == "swap"

    def ready(self) -> Scheduler:
        """The scheduler; a 503 while the server loads, the refusal (with its figures) for a
        bundle that cannot be served."""
        self.server.check_ready()
        if self.refusal is not None or self.scheduler is None:
            raise ApiError(
                400,
                f"model {self.model_name!r} cannot be served: {self.refusal}",
                param="model",
                code=self.refusal_code,
            )
        return self.scheduler

    def request_residency(self, mode: str) -> RequestResidency:
        """Whether this request's models fit together, one at a time, or not at all."""
        roles = ["perception"] if mode in PERCEPTION_ONLY else list(self.sizes)
        room = self.plan.budget.bytes - self.plan.baseline_bytes
        return residency(
            {role: (self.keys[0][role], self.sizes[role]) for role in roles if role in self.sizes},
            room,
        )

    def check(self, job: Job) -> None:
        """Refuse at once, with the figures, a request that could not fit even alone."""
        decided = self.request_residency(job.options.mode)
        if decided.decision == "refuse":
            raise ApiError(
                400,
                f"model {self.model_name!r}: {decided.reason}",
                param="model",
                code="memory_refused",
            )

    def status(self) -> dict:
        """Loaded, bytes, loads, evictions (of its models: a model shared with another bundle
        counts in both), queue: what /health shows for this bundle."""
        models = {
            role: self.server.pool.entry(key)
            for role, key in (self.keys[0].items() if self.keys else ())
        }
        distinct = {entry.key: entry for entry in models.values()}.values()  # a shared file once
        return {
            "loaded": bool(models) and all(entry.model is not None for entry in models.values()),
            "stages_loaded": {role: entry.model is not None for role, entry in models.items()},
            "bytes": sum(entry.bytes for entry in distinct),
            "loads": sum(entry.loads for entry in distinct),
            "evictions": sum(entry.evictions for entry in distinct),
            "residency": self.residency.decision if self.residency else None,
            "queue_depth": self.scheduler.queue_depth if self.scheduler else 0,
            "busy": self.scheduler.busy if self.scheduler else 0,
            "refused": self.refusal,
        }


class ServerState:
    """The server's shared objects: settings, metrics, the model pool and every served bundle."""

    def __init__(self, settings: ServeSettings, opened: list[Opened]):
        self.settings = settings
        self.metrics = Metrics()
        planned = [item.plan for item in opened if item.plan is not None]
        self.budget_bytes = planned[0].budget.bytes if planned else 0
        self.baseline_bytes = planned[0].baseline_bytes if planned else 0
        self.pool = ModelPool(
            self.budget_bytes - self.baseline_bytes,
            keep_alive_s=settings.keep_alive_s,
            on_idle_unload=self.metrics.model_unloads.inc,
        )
        self.bundles = {item.name: ServedBundle(self, item) for item in opened}
        self.loaded = False
        self.load_error: str | None = None
        self.on_load_failure = lambda: None  # set by the runner: stops the server
        self.started = time.time()

    def pick(self, name: str | None) -> ServedBundle:
        """The bundle a request's `model` names (its name or its folder's). With one bundle an
        absent `model` picks it; an unknown name is a 404 `model_not_found` listing what is
        served, never a silent fallback to another bundle."""
        served = list(self.bundles.values())
        for bundle in served:
            if name in (bundle.model_name, bundle.path.name):
                return bundle
        if name is None and len(served) == 1:
            return served[0]
        known = ", ".join(self.bundles)
        if not name:
            raise ApiError(
                400,
                f"name the model: this server serves {known}",
                param="model",
                code="model_required",
            )
        raise ApiError(
            404,
            f"the model {name!r} does not exist here; this server serves: {known} (GET /v1/models)",
            param="model",
            code="model_not_found",
        )

    def check_ready(self) -> None:
        if not self.loaded:
            reason = self.load_error or "the models are loading"
            raise ApiError(503, reason, code="loading", headers={"Retry-After": "2"})

    def start_loading(self) -> threading.Thread:
        thread = threading.Thread(target=self._load, name="edge-et-load", daemon=True)
        thread.start()
        return thread

    def memory(self) -> dict:
        """The budget, what the pool holds, and this process's resident bytes (now and peak)."""
        return {
            "budget_bytes": self.budget_bytes,
            "baseline_bytes": self.baseline_bytes,
            "room_bytes": self.pool.room,
            "used_bytes": self.pool.used_bytes,
            "rss_bytes": current_rss(),
            "peak_rss_bytes": process_peak_rss(),
        }

    def close(self) -> None:
        self.pool.stop()  # runs waiting for a model end now, not after the join's timeout
        for served in self.bundles.values():
            if served.scheduler is not None:
                served.scheduler.close()
            for pipeline in served.pipelines:
                pipeline.close()
        self.pool.close()

    def _load(self) -> None:
        """With one bundle, load its models now (and warm up); with several, load on demand."""
        serving = [served for served in self.bundles.values() if served.bundle is not None]
        try:
            if len(self.bundles) == 1:
                for served in serving:
                    for pipeline in served.pipelines:
                        pipeline.load()
                        if self.settings.warm_up:
                            _warm_up(pipeline)
                        pipeline.close()  # back to the pool, which keeps it loaded
        except edge_et.EdgeEtError as error:
            self.load_error = f"loading failed: {error}"
            log.error(self.load_error)
            self.on_load_failure()
            return
        for served in serving:
            served.scheduler = Scheduler(
                served.pipelines,
                max_queue=self.settings.max_queue,
                metrics=self.metrics,
                group=served.swaps,
                check=served.check,
                extraction_cache_entries=self.settings.extraction_cache_entries,
                name=served.model_name,
            )
        self.metrics.bind(
            queue_depth=lambda: sum(s["queue_depth"] for s in self._statuses()),
            busy=lambda: sum(s["busy"] for s in self._statuses()),
            model_loads=lambda: self.pool.loads,
            resident_models=lambda: self.pool.resident_models,
        )
        self.metrics.bind_models(self.pool.snapshot, self._statuses_by_name, self.memory)
        self.loaded = True
        log.info(
            "ready: %s", ", ".join(f"{s.model_name} ({len(s.pipelines)} slot(s))" for s in serving)
        )

    def _statuses(self) -> list[dict]:
        return list(self._statuses_by_name().values())

    def _statuses_by_name(self) -> dict[str, dict]:
        return {name: served.status() for name, served in self.bundles.items()}


def _warm_up(pipeline: edge_et.Pipeline) -> None:
    """One short perception on a blank picture, as llama-server's warm-up run: the first
    client request does not pay for first-use costs (allocations, encoder set-up)."""
    blank = np.full((64, 64, 3), 255, dtype=np.uint8)
    pipeline.perceive(
        blank, WARM_UP_QUESTION, edge_et.RunOptions(mode="extract", seed=random.randrange(2**31))
    )
