"""Backends by name: the one place that knows which backends exist.

The registry holds each backend's light `BackendSpec`; a backend's native library is imported
only when one of its models is opened (`BackendSpec.model_type`).
"""

from __future__ import annotations

from edge_et.backends.llama_cpp.spec import LLAMA_CPP
from edge_et.backends.onnx.spec import ONNX
from edge_et.backends.spec import BackendSpec
from edge_et.errors import BundleError

# In the order error messages list them.
_REGISTRY: dict[str, BackendSpec] = {spec.name: spec for spec in (LLAMA_CPP, ONNX)}


def names() -> tuple[str, ...]:
    """The backend names a bundle.json may declare."""
    return tuple(_REGISTRY)


def specs() -> tuple[BackendSpec, ...]:
    return tuple(_REGISTRY.values())


def get(name: str) -> BackendSpec:
    """The backend called `name`; an unknown name is one line listing the valid ones."""
    if name not in _REGISTRY:
        raise BundleError(
            f"unknown backend {name!r}; known backends: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def backend_class(name: str) -> type:
    """The model class for a backend name; errors list the valid names or the extra to install."""
    return get(name).model_type()


def gpu_memory():
    """The VRAM of the first GPU a backend can see (the first backend that reports one)."""
    for spec in _REGISTRY.values():
        vram = spec.gpu_memory()
        if vram is not None:
            return vram
    return None
