"""Where a Pipeline gets its loaded models: its own (the default) or a shared pool's.

A `Pipeline` asks its `ModelSource` for a stage's model when the stage runs and hands it back
when it frees it. The default, `OwnModels`, loads the model for this pipeline alone and frees
it on the spot. A server of several bundles gives every pipeline one shared source instead
(edge_et/serve/pool.py), which loads a file once for every bundle that uses it, lends it to
one run at a time and decides itself when to free it (edge_et/memory/residency.py).
"""

from __future__ import annotations

from typing import Protocol

from edge_et import backends
from edge_et.backends.base import TextModel
from edge_et.bundle.manifest import Bundle, StageSpec
from edge_et.errors import BundleError, ModelError, ModelLoadError
from edge_et.memory.scheduler import Plan
from edge_et.runtime.image_tuning import tuned_prefill
from edge_et.runtime.plan import requested_ctx


class ModelSource(Protocol):
    """Lends loaded models to a pipeline."""

    def open(
        self, spec: StageSpec, settings: dict, n_threads: int | None
    ) -> tuple[TextModel, float | None]:
        """The model of `spec` loaded with `settings` (the backend's keyword arguments), and
        the seconds this call spent loading it (None when it was already loaded).

        Raises ModelLoadError when the file cannot be loaded.
        """

    def close(self, spec: StageSpec, model: TextModel) -> None:
        """The pipeline is done with `model` for now."""


def load_model(spec: StageSpec, settings: dict, n_threads: int | None) -> TextModel:
    """Load `spec`'s model with its backend; ModelLoadError (one line) when that fails."""
    cls = backends.get(spec.backend).model_type()
    try:
        return cls(
            model_path=str(spec.model_path),
            mmproj_path=str(spec.mmproj_path) if spec.mmproj_path else None,
            n_threads=n_threads,
            **settings,
        )
    except (ModelError, BundleError) as exc:  # the file changed since the bundle was checked
        raise ModelLoadError(f"{spec.role} model: {exc}") from None


class OwnModels:
    """A pipeline's own models: loaded on `open`, freed on `close`."""

    def open(
        self, spec: StageSpec, settings: dict, n_threads: int | None
    ) -> tuple[TextModel, float | None]:
        model = load_model(spec, settings, n_threads)
        return model, model.load_s

    def close(self, spec: StageSpec, model: TextModel) -> None:
        model.close()


def stage_settings(
    bundle: Bundle,
    spec: StageSpec,
    plan: Plan | None,
    *,
    n_threads: int | None = None,
    device: str | None = None,
    image_cache_bytes: int | None = None,
) -> dict:
    """What `spec`'s model is opened with (its backend's keyword arguments): the memory plan's
    context, KV type, GPU layers and image bound, else the bundle's defaults; the device for a
    backend that takes one; the perception model's embedding-cache bound and tuned prefill."""
    planned = plan.stages.get(spec.role) if plan else None
    takes_device = backends.get(spec.backend).device_argument
    extra = {"device": device} if device and takes_device else {}
    if spec.role == "perception" and image_cache_bytes is not None:
        extra["image_cache_bytes"] = image_cache_bytes  # llama.cpp's embedding cache
    if spec.role == "perception" and spec.backend == "llama.cpp":
        tuned = tuned_prefill(bundle, n_threads=n_threads)  # image_tuning.py
        extra.update({"prefill": tuned} if tuned else {})
    if planned is None:
        return {"n_ctx": requested_ctx(spec), **extra}
    settings = {
        "n_ctx": planned.n_ctx,
        "kv_type": planned.kv_type,
        "n_gpu_layers": planned.gpu_layers,
        **extra,
    }
    if spec.role == "perception" and planned.image_tokens:
        settings["image_max_tokens"] = planned.image_tokens
    return settings
