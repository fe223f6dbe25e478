"""edge-et: Extract+Think on your device. The names in `__all__` are the public API.

    with edge_et.open_pipeline("models/bundles/default") as pipeline:
        result = pipeline.run("picture.png", "What color is the circle?\nA. red\nB. green", seed=0)

`import edge_et` loads neither llama.cpp nor ONNX Runtime: a backend is imported when a model
of a bundle that needs it is first loaded.
"""

from edge_et.bundle.manifest import Bundle
from edge_et.core.hints import hint_from_question
from edge_et.core.images import DEFAULT_MAX_PIXELS, LoadedImage
from edge_et.core.images import as_loaded_image as decode_image
from edge_et.core.stats import Result, StageStats
from edge_et.errors import (
    BundleError,
    DownloadError,
    EdgeEtError,
    ExportError,
    InputError,
    MissingExtra,
    ModelError,
    PipelineBusy,
    PlanRefused,
)
from edge_et.runtime.api import open_pipeline
from edge_et.runtime.chat import Conversation
from edge_et.runtime.pipeline import Pipeline, RunOptions
from edge_et.runtime.plan import plan_bundle
from edge_et.runtime.stream import ExtractionText, Finished, ReasoningText, StageFinished


def __getattr__(name: str) -> str:
    # importlib.metadata costs about a tenth of `import edge_et`: read the version on demand.
    if name != "__version__":
        raise AttributeError(f"module 'edge_et' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edge-et")  # pyproject.toml's version, the one source of truth
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__all__ = [
    "open_pipeline",
    "Pipeline",
    "RunOptions",
    "Result",
    "Conversation",
    "StageStats",
    "Bundle",
    "plan_bundle",
    "ExtractionText",
    "ReasoningText",
    "StageFinished",
    "Finished",
    "EdgeEtError",
    "InputError",
    "BundleError",
    "PlanRefused",
    "MissingExtra",
    "ModelError",
    "PipelineBusy",
    "DownloadError",
    "ExportError",
    # For servers and apps that manage images and caches themselves (edge_et.serve uses them).
    "decode_image",
    "LoadedImage",
    "DEFAULT_MAX_PIXELS",
    "hint_from_question",
]
