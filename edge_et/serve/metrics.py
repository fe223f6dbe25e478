"""Prometheus metrics of one server, in a registry of its own (two apps in one process, as in
tests, do not collide). prometheus-client is the reference client: text format, process
collector (resident bytes, CPU seconds, open files) included.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

import edge_et

disable_created_metrics()  # the *_created series double the page and no dashboard reads them
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes among others
        self.requests = Counter(
            "edge_et_requests", "HTTP requests answered", ["path", "status"], registry=r
        )
        self.rejections = Counter(
            "edge_et_rejections", "Requests refused before running", ["reason"], registry=r
        )
        self.cancelled = Counter(
            "edge_et_cancelled", "Runs stopped because the client left", registry=r
        )
        self.completions = Counter(
            "edge_et_completions", "Runs that ended", ["outcome"], registry=r
        )
        self.tokens = Counter(
            "edge_et_tokens", "Tokens per stage, prompt or generated", ["stage", "kind"], registry=r
        )
        self.pieces = Counter(
            "edge_et_streamed_pieces", "Text pieces generated, counted live", ["stage"], registry=r
        )
        self.stage_seconds = Counter(
            "edge_et_stage_seconds", "Seconds per stage and phase", ["stage", "phase"], registry=r
        )
        self.cache = Counter(
            "edge_et_cache",
            "Image cache lookups: embedding (the encode) and "
            "extraction (the whole perception stage)",
            ["cache", "result"],
            registry=r,
        )
        self.latency = Histogram(
            "edge_et_request_seconds",
            "Queue + run time of a completion",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "edge_et_queue_seconds",
            "Time a run waited for a slot",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_unloads = Counter(
            "edge_et_model_unloads", "Idle unloads after keep-alive", registry=r
        )

    def bind(
        self,
        *,
        queue_depth: Callable[[], int],
        busy: Callable[[], int],
        model_loads: Callable[[], int],
        resident_models: Callable[[], int],
    ) -> None:
        """Gauges read from the scheduler when scraped."""
        r = self.registry
        Gauge("edge_et_queue_depth", "Runs waiting for a slot", registry=r).set_function(
            queue_depth
        )
        Gauge("edge_et_slots_busy", "Slots running a request", registry=r).set_function(busy)
        Gauge(
            "edge_et_model_loads", "Models loaded since start (all slots)", registry=r
        ).set_function(model_loads)
        Gauge("edge_et_models_resident", "Models in memory now", registry=r).set_function(
            resident_models
        )

    def bind_models(
        self,
        models: Callable[[], list[dict]],
        bundles: Callable[[], dict[str, dict]],
        memory: Callable[[], dict],
    ) -> None:
        """Per model (the pool's, labelled `model`: file@sha256) and per bundle (labelled
        `bundle`: a request's `model`), read when scraped."""
        self.registry.register(_PoolCollector(models, bundles, memory))

    def record(self, result: edge_et.Result, extraction_cached: bool) -> None:
        """Tokens, per-stage seconds and cache outcomes of one finished run."""
        for stage, stats in result.stages.items():
            self.tokens.labels(stage, "prompt").inc(stats.prompt_tokens)
            self.tokens.labels(stage, "generated").inc(stats.generated_tokens)
            for phase, seconds in (
                ("load", stats.load_s),
                ("image_encode", stats.image_encode_s),
                ("prefill", stats.prefill_s),
                ("decode", stats.decode_s),
            ):
                if seconds:
                    self.stage_seconds.labels(stage, phase).inc(seconds)
            if stats.image_cached is not None:
                self.cache.labels("embedding", "hit" if stats.image_cached else "miss").inc()
        if result.mode not in ("direct", "chat"):  # chat: no picture, no extraction
            self.cache.labels("extraction", "hit" if extraction_cached else "miss").inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _PoolCollector:
    """The model pool and the served bundles as metric families, one sample per model/bundle."""

    def __init__(self, models, bundles, memory):
        self._models, self._bundles, self._memory = models, bundles, memory

    def collect(self):
        models = self._models()
        gauges = {
            "loaded": "1 when the model is in memory",
            "bytes": "Planned bytes of the model",
            "in_use": "1 while a run uses the model",
            "waiting": "Runs waiting for the model",
        }
        for field, text in gauges.items():
            family = GaugeMetricFamily(f"edge_et_pool_model_{field}", text, labels=["model"])
            for model in models:
                family.add_metric([model["model"]], float(model[field]))
            yield family
        counters = {
            "loads": "Loads of the model",
            "evictions": "Unloads to make room, least recently used first",
            "idle_unloads": "Unloads after the keep-alive",
            "swap_unloads": "Unloads by a swapping bundle before its other model loaded",
        }
        for field, text in counters.items():
            family = CounterMetricFamily(f"edge_et_pool_model_{field}", text, labels=["model"])
            for model in models:
                family.add_metric([model["model"]], model[field])
            yield family
        bundles = self._bundles()
        for field, text in {
            "loaded": "1 when all the bundle's models are in memory",
            "bytes": "Planned bytes of the bundle's models",
            "queue_depth": "Requests waiting",
            "busy": "Slots running a request",
        }.items():
            family = GaugeMetricFamily(f"edge_et_bundle_{field}", text, labels=["bundle"])
            for name, status in bundles.items():
                family.add_metric([name], float(status[field]))
            yield family
        memory = self._memory()
        family = GaugeMetricFamily(
            "edge_et_memory_bytes",
            "Budget, room after the runtime, bytes the pool holds, peak RSS",
            labels=["kind"],
        )
        for kind in ("budget_bytes", "room_bytes", "used_bytes", "peak_rss_bytes"):
            if memory.get(kind) is not None:
                family.add_metric([kind.removesuffix("_bytes")], float(memory[kind]))
        yield family
