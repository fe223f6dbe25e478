"""What a backend tells the rest of edge-et about itself, so nothing else compares backend names.

Each backend package defines one `BackendSpec` in a light module (`<backend>/spec.py`): it
imports no native library; the model class is named as "module:Class" and imported only when a
model is opened. The registry (edge_et.backends) maps the manifest's `backend` names to them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from edge_et.backends.stage_run import StageRequest, StageRun
from edge_et.errors import MissingExtra
from edge_et.formats.gguf import GGUFInfo
from edge_et.memory.footprint import VisionShape
from edge_et.memory.probes import VRAM
from edge_et.memory.scheduler import Estimator


class Stage(Protocol):
    """What a backend reads of a bundle stage (edge_et.bundle.manifest.StageSpec), and fills in
    when it validates one (paths and headers)."""

    role: str
    backend: str
    model: str
    arch: str
    mmproj: str | None
    extra_files: list[str]
    model_path: Path
    mmproj_path: Path | None
    model_info: GGUFInfo | None
    mmproj_info: GGUFInfo | None
    onnx_config: dict | None


# resolve(relative, what) -> the absolute path inside the bundle (one error line otherwise)
Resolve = Callable[[str, str], Path]
# bare(model, rendered prompt, request) -> the same request through the library's plain calls
BareRun = Callable[[object, str, StageRequest], StageRun]


def manifest_files(stage: Stage, derived: list[str] | None = None) -> list[str]:
    """The stage's files in checksum order: model, mmproj, files the backend derives from the
    model's name (`derived`), then the manifest's extra_files."""
    return (
        [stage.model]
        + ([stage.mmproj] if stage.mmproj else [])
        + (derived or [])
        + stage.extra_files
    )


@dataclass(frozen=True)
class BackendSpec:
    """One backend: its name in bundle.json and its answer to every question the runtime asks.

    validate_stage(stage, resolve): check a manifest stage's files and fill its paths/headers.
    stage_files(stage): every file of the stage, in checksum order (see `manifest_files`).
    estimator(stage, text_reserve): (n_ctx, kv_type) -> StageFootprint, from the files alone;
        a perception stage keeps `text_reserve` tokens of its context for text.
    vision_shape(stage): the image-token bounds of a (validated) perception stage.
    describe(stage): {"model": {...}, "mmproj": {...}} for `edge-et info` and comparisons.
    devices: the `--device` values it runs on; `device_argument`: its model takes `device`
        (an execution provider) rather than only GPU layers.
    bare_runner(model, request): the bare baseline for `request` on a loaded model, or None
        where none compares (then `no_bare_note` says why); `bare_label` names it in reports.
    decode_reads(stage, context_tokens): bytes one decode step reads (bench roofline), or None.
    kv_bytes_per_position(stage, context_tokens): average KV bytes a decode step reads per
        cached position (run --deadline).
    gpu_memory(): the VRAM the backend would offload to, or None.
    build_info(): machine-report fields about the installed library (bench, speed keys).
    host_info(): `edge-et info` fields about this machine for the backend's stages.
    constrain(constraint): the backend's compiled form of a JsonConstraint (InputError, one
        line, for a schema it cannot compile); None where the backend's models cannot
        constrain decoding (base.ConstrainedSampling): a constrained request is then refused.
    """

    name: str
    extra: str
    model_class: str
    devices: tuple[str, ...]
    validate_stage: Callable[[Stage, Resolve], None]
    stage_files: Callable[[Stage], list[str]]
    estimator: Callable[[Stage, int], Estimator]
    vision_shape: Callable[[Stage], VisionShape]
    describe: Callable[[Stage], dict]
    bare_runner: Callable[[object, StageRequest], BareRun | None]
    bare_label: str
    no_bare_note: str
    decode_reads: Callable[[Stage, int], dict | None]
    kv_bytes_per_position: Callable[[Stage, int], float]
    device_argument: bool = False
    gpu_memory: Callable[[], VRAM | None] = field(default=lambda: None)
    build_info: Callable[[], dict] = field(default=dict)
    host_info: Callable[[], dict] = field(default=dict)
    constrain: Callable[[object], object] | None = None

    def import_model_module(self):
        """The model's module, imported with its native libraries (ImportError when the extra
        is missing): the memory planner counts what that import costs."""
        return importlib.import_module(self.model_class.split(":")[0])

    def model_type(self) -> type:
        """The model class; a missing native package is one line naming the extra to install."""
        try:
            module = self.import_model_module()
        except ImportError as exc:
            raise MissingExtra(
                f"the {self.name} backend needs a package that is not installed ({exc.name}); "
                f"install it with: pip install 'edge-et[{self.extra}]'",
                extra=self.extra,
            ) from None
        return getattr(module, self.model_class.split(":")[1])
