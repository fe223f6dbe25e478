"""Backends by name, imported only when a bundle asks for them (STYLE.md 1 and 3)."""

from __future__ import annotations

import importlib

from edge_et.bundle.manifest import SUPPORTED_BACKENDS
from edge_et.errors import BundleError, MissingExtra

# name in bundle.json → (module, class, pip extra that provides it)
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "llama.cpp": ("edge_et.backends.llama_cpp.model", "LlamaCppModel", "llama"),
    "onnx": ("edge_et.backends.onnx.model", "OnnxModel", "onnx"),
}
assert set(_REGISTRY) == set(SUPPORTED_BACKENDS), "bundle.SUPPORTED_BACKENDS and the registry differ"


def backend_class(name: str):
    """The model class for a backend name; errors list the valid names or the extra to install."""
    if name not in _REGISTRY:
        raise BundleError(f"unknown backend {name!r}; known backends: {', '.join(sorted(_REGISTRY))}")
    module_name, class_name, extra = _REGISTRY[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingExtra(f"the {name} backend needs a package that is not installed ({exc.name}); "
                           f"install it with: pip install 'edge-et[{extra}]'",
                           extra=extra) from None
    return getattr(module, class_name)


def import_backend_module(name: str):
    """The model module of backend `name`, imported with its native libraries (ImportError when
    its extra is missing): the memory planner counts what that import costs."""
    return importlib.import_module(_REGISTRY[name][0])
