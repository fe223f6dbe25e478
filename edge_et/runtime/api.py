"""Open a bundle for running: what `edge-et run`, `edge-et eval` and apps do before the first
question, in one place.

Loading validates the bundle, the modes asked for are checked against its stages, the memory
plan is computed from the file headers and a plan that does not fit is refused
(`PlanRefused`) before any model loads. The returned `Pipeline` loads models on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from edge_et.bundle.manifest import Bundle
from edge_et.errors import InputError
from edge_et.memory.scheduler import require_runnable
from edge_et.runtime.pipeline import RESIDENCIES, Pipeline, check_bundle_for_mode
from edge_et.runtime.plan import plan_bundle


def open_bundle(
    bundle: str | os.PathLike | Bundle, *, modes: Iterable[str] = (), verify: bool = False
) -> Bundle:
    """The bundle at `bundle` (or `bundle` itself), checked to hold the stages `modes` need;
    `verify` also checks every file's sha256 when reading from a folder."""
    loaded = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle, verify_checksums=verify)
    for mode in modes:
        check_bundle_for_mode(loaded, mode)
    return loaded


def open_pipeline(
    bundle: str | os.PathLike | Bundle,
    *,
    mem_budget: str | int | None = None,
    device: str = "cpu",
    residency: str | None = None,
    threads: int | None = None,
    verify: bool = False,
    modes: Iterable[str] = (),
    image_cache_bytes: int | None = None,
    device_profile: str | None = None,
) -> Pipeline:
    """A `Pipeline` on `bundle` under a memory plan that fits; models load on first use.

    Args:
        bundle: a bundle folder (or its bundle.json), a bundle NAME in the bundles home, or a
            loaded `Bundle`.
        mem_budget: "6GB", "512MiB" or bytes (default: the bundle's, else 80% of available
            memory).
        device: "cpu", "cuda", or an ONNX Runtime provider (coreml, qnn, nnapi, dml, xnnpack).
        residency: None or "auto" (the plan decides), "co-resident" or "swap".
        threads: CPU threads per model (default: every core this process may use).
        verify: check every file's sha256 before planning.
        modes: modes to check the bundle for now (each run checks its own mode anyway).
        image_cache_bytes: bound of the perception model's image-embedding cache (llama.cpp
            bundles; default 256 MiB); 0 keeps none.
        device_profile: plan with that device's app memory as the budget (`edge-et profiles`).

    Returns:
        A `Pipeline` (a context manager: `with open_pipeline(...) as pipeline:` frees the
        models at the end).

    Raises:
        BundleError: the bundle is missing, malformed, or lacks a stage `modes` needs.
        InputError: an unknown residency, device, device profile or budget size.
        PlanRefused: the models do not fit the budget even one at a time (the message says
            what would fit).
        MissingExtra: the bundle's backend is not installed (names the extra).
    """
    if residency not in (None, "auto", *RESIDENCIES):
        raise InputError(
            f"unknown residency {residency!r}; choose one of: auto, {', '.join(RESIDENCIES)}"
        )
    loaded = open_bundle(bundle, modes=modes, verify=verify)
    memory_plan = require_runnable(
        plan_bundle(loaded, mem_budget=mem_budget, device=device, device_profile=device_profile)
    )
    return Pipeline(
        loaded,
        n_threads=threads,
        plan=memory_plan,
        device=device,
        residency=None if residency == "auto" else residency,
        image_cache_bytes=image_cache_bytes,
    )
