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

import edge_et

disable_created_metrics()  # the *_created series double the page and no dashboard reads them
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes among others
        self.requests = Counter("edge_et_requests", "HTTP requests answered",
                                ["path", "status"], registry=r)
        self.rejections = Counter("edge_et_rejections", "Requests refused before running",
                                  ["reason"], registry=r)
        self.cancelled = Counter("edge_et_cancelled", "Runs stopped because the client left",
                                 registry=r)
        self.completions = Counter("edge_et_completions", "Runs that ended", ["outcome"],
                                   registry=r)
        self.tokens = Counter("edge_et_tokens", "Tokens per stage, prompt or generated",
                              ["stage", "kind"], registry=r)
        self.pieces = Counter("edge_et_streamed_pieces", "Text pieces generated, counted live",
                              ["stage"], registry=r)
        self.stage_seconds = Counter("edge_et_stage_seconds", "Seconds per stage and phase",
                                     ["stage", "phase"], registry=r)
        self.cache = Counter("edge_et_cache", "Image cache lookups: embedding (the encode) and "
                             "extraction (the whole perception stage)", ["cache", "result"],
                             registry=r)
        self.latency = Histogram("edge_et_request_seconds", "Queue + run time of a completion",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("edge_et_queue_seconds", "Time a run waited for a slot",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.model_unloads = Counter("edge_et_model_unloads", "Idle unloads after keep-alive",
                                     registry=r)

    def bind(self, *, queue_depth: Callable[[], int], busy: Callable[[], int],
             model_loads: Callable[[], int], resident_models: Callable[[], int]) -> None:
        """Gauges read from the scheduler when scraped."""
        r = self.registry
        Gauge("edge_et_queue_depth", "Runs waiting for a slot", registry=r).set_function(queue_depth)
        Gauge("edge_et_slots_busy", "Slots running a request", registry=r).set_function(busy)
        Gauge("edge_et_model_loads", "Models loaded since start (all slots)",
              registry=r).set_function(model_loads)
        Gauge("edge_et_models_resident", "Models in memory now",
              registry=r).set_function(resident_models)

    def record(self, result: edge_et.Result, extraction_cached: bool) -> None:
        """Tokens, per-stage seconds and cache outcomes of one finished run."""
        for stage, stats in result.stages.items():
            self.tokens.labels(stage, "prompt").inc(stats.prompt_tokens)
            self.tokens.labels(stage, "generated").inc(stats.generated_tokens)
            for phase, seconds in (("load", stats.load_s), ("image_encode", stats.image_encode_s),
                                   ("prefill", stats.prefill_s), ("decode", stats.decode_s)):
                if seconds:
                    self.stage_seconds.labels(stage, phase).inc(seconds)
            if stats.image_cached is not None:
                self.cache.labels("embedding", "hit" if stats.image_cached else "miss").inc()
        if result.mode not in ("direct", "chat"):  # chat: no picture, no extraction
            self.cache.labels("extraction", "hit" if extraction_cached else "miss").inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)
