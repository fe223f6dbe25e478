"""The ONNX backend as the registry sees it: ONNX Runtime sessions over an exported stage folder.

Light on purpose: onnxruntime is imported only when a model is opened or `edge-et info` asks
which execution providers this machine has.
"""

from __future__ import annotations

from edge_et.backends.onnx.bare import NO_IMAGE_BASELINE, bare_onnx_stage
from edge_et.backends.onnx.describe import describe_onnx_files
from edge_et.backends.onnx.footprint import F32, onnx_footprint, vision_shape
from edge_et.backends.spec import BackendSpec, Resolve, Stage, manifest_files
from edge_et.backends.stage_run import StageRequest
from edge_et.core.devices import DEVICES
from edge_et.errors import BundleError
from edge_et.formats.onnx_stage import config_name, validate_onnx_stage
from edge_et.memory.footprint import VisionShape
from edge_et.memory.scheduler import Estimator


def _validate(stage: Stage, resolve: Resolve) -> None:
    if not all(isinstance(f, str) for f in stage.extra_files):
        raise BundleError(f"bundle.json: '{stage.role}.extra_files' must list file names")
    validate_onnx_stage(stage, resolve)


def _stage_files(stage: Stage) -> list[str]:
    return manifest_files(stage, [config_name(stage.model)])


def _estimator(stage: Stage, text_reserve: int) -> Estimator:
    return lambda n_ctx, kv_type: onnx_footprint(stage, n_ctx, kv_type, text_reserve=text_reserve)


def _vision_shape(stage: Stage) -> VisionShape:
    return vision_shape(stage.onnx_config)


def _bare_runner(model, request: StageRequest):
    return bare_onnx_stage if request.image is None else None


def _kv_bytes_per_position(stage: Stage, context_tokens: int) -> float:
    """Float32 keys and values of every layer, read once per decode step."""
    config = stage.onnx_config
    return 2 * config["n_layer"] * config["n_head_kv"] * config["head_dim"] * F32


def host_info() -> dict:
    """The execution providers of this machine's onnxruntime (or how to install it)."""
    try:
        from edge_et.backends.onnx.session import available_providers
    except ImportError:
        return {"onnx_providers": "onnxruntime is not installed: pip install 'edge-et[onnx]'"}
    return {"onnx_providers": available_providers()}


def build_info() -> dict:
    """The onnxruntime build a report was measured with (its version; no import of it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return {"onnxruntime": version("onnxruntime")}
    except PackageNotFoundError:
        return {"onnxruntime": None}


ONNX = BackendSpec(
    name="onnx",
    extra="onnx",
    model_class="edge_et.backends.onnx.model:OnnxModel",
    devices=DEVICES,
    validate_stage=_validate,
    stage_files=_stage_files,
    estimator=_estimator,
    vision_shape=_vision_shape,
    describe=describe_onnx_files,
    bare_runner=_bare_runner,
    bare_label="bare onnxruntime",
    no_bare_note=NO_IMAGE_BASELINE,
    decode_reads=lambda stage, context_tokens: None,
    kv_bytes_per_position=_kv_bytes_per_position,
    device_argument=True,
    host_info=host_info,
    build_info=build_info,
)
