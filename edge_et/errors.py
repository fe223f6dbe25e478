"""The errors edge-et raises on purpose: `EdgeEtError` and one kind per cause.

An app catches a kind to tell cases apart without parsing text; the CLI prints any of them
as one `error: ...` line and exits with code 2. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class EdgeEtError(Exception):
    """Something the caller can fix (input, files, memory, installation); the message is one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class InputError(EdgeEtError):
    """A bad image, question, option, flag or batch line."""


class BundleError(EdgeEtError):
    """A broken or missing bundle, manifest or model file."""


class PlanRefused(EdgeEtError):
    """The bundle does not fit the memory budget; `needed_bytes` and `budget_bytes` say by how much."""

    def __init__(
        self, message: str, *, needed_bytes: int | None = None, budget_bytes: int | None = None
    ):
        super().__init__(message)
        self.needed_bytes = needed_bytes
        self.budget_bytes = budget_bytes


class MissingExtra(EdgeEtError):
    """An optional package is not installed; `extra` names the pip extra that brings it."""

    def __init__(self, message: str, *, extra: str | None = None):
        super().__init__(message)
        self.extra = extra


class PipelineBusy(EdgeEtError):
    """A call asked not to wait (`wait=False`) while another thread was using the pipeline."""


class ModelError(EdgeEtError):
    """A backend (llama.cpp, libmtmd, ONNX Runtime) failed to load or run a model."""


class DownloadError(EdgeEtError):
    """`pull` could not fetch or store a model: the hub, the network, pip or the disk failed."""


class ExportError(EdgeEtError):
    """The export toolchain could not produce a valid bundle (conversion or validation failed)."""


class ModelLoadError(ModelError):
    """A planned model file failed to load (changed or damaged since it was checked): no later
    request can succeed either, so a batch stops here instead of failing every line."""
