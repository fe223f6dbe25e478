"""The llama.cpp backend as the registry sees it: GGUF models through llama-cpp-python.

Light on purpose: llama_cpp itself is imported only when a model is opened, a bare baseline
runs, or the GPU and build are asked about.
"""

from __future__ import annotations

from edge_et.backends.llama_cpp.bare import bare_comparable, bare_stage
from edge_et.backends.llama_cpp.describe import describe_gguf_files
from edge_et.backends.llama_cpp.footprint import (
    cpu_repack_types,
    text_footprint,
    with_vision,
)
from edge_et.backends.llama_cpp.gpu import cuda_vram
from edge_et.backends.llama_cpp.reads import (
    decode_bytes_per_token,
    kv_bytes_per_position,
)
from edge_et.backends.llama_cpp.validate import validate_gguf_stage
from edge_et.backends.llama_cpp.vision_footprint import gguf_vision_shape
from edge_et.backends.spec import BackendSpec, Stage, manifest_files
from edge_et.backends.stage_run import StageRequest
from edge_et.memory.footprint import StageFootprint, VisionShape
from edge_et.memory.scheduler import Estimator

# cpu, or cuda with as many layers on the GPU as its VRAM holds (n_gpu_layers).
DEVICES = ("cpu", "cuda")


def stage_estimator(stage: Stage, text_reserve: int) -> Estimator:
    """(n_ctx, kv_type) -> footprint of the stage (its mmproj included), from headers only."""
    # On a GPU the CPU backend still repacks the layers it keeps; planning them all is safe.
    repack_types = cpu_repack_types()

    def estimate(n_ctx: int, kv_type: str) -> StageFootprint:
        footprint = text_footprint(
            stage.model_info, stage.role, n_ctx, kv_type, repack_types=repack_types
        )
        if stage.mmproj_info is not None:
            footprint = with_vision(footprint, stage.mmproj_info, stage.model_info, text_reserve)
        return footprint

    return estimate


def _vision_shape(stage: Stage) -> VisionShape:
    return gguf_vision_shape(stage.mmproj_info)


def _bare_runner(model, request: StageRequest):
    return bare_stage if bare_comparable(model, request) else None


def _decode_reads(stage: Stage, context_tokens: int) -> dict | None:
    if stage.model_info is None:
        return None
    return decode_bytes_per_token(stage.model_info, context_tokens)


def _kv_bytes_per_position(stage: Stage, context_tokens: int) -> float:
    return kv_bytes_per_position(stage.model_info, context_tokens)


def build_info() -> dict:
    """The llama-cpp-python version and llama.cpp's system info (None when not installed)."""
    try:
        import llama_cpp
    except ImportError:
        return {"llama_cpp_python": None}
    return {
        "llama_cpp_python": llama_cpp.__version__,
        "llama_cpp_system": llama_cpp.llama_print_system_info().decode().strip(" |"),
    }


def _constrain(constraint):
    from edge_et.backends.llama_cpp.grammar import gbnf  # imports llama_cpp

    return gbnf(constraint)


LLAMA_CPP = BackendSpec(
    name="llama.cpp",
    extra="llama",
    model_class="edge_et.backends.llama_cpp.model:LlamaCppModel",
    devices=DEVICES,
    validate_stage=validate_gguf_stage,
    stage_files=manifest_files,
    estimator=stage_estimator,
    vision_shape=_vision_shape,
    describe=describe_gguf_files,
    bare_runner=_bare_runner,
    bare_label="bare llama-cpp-python",
    no_bare_note="no bare run: LLaVA-OneVision images are packed by edge-et; bare mtmd would "
    "feed a different number of image tokens",
    decode_reads=_decode_reads,
    kv_bytes_per_position=_kv_bytes_per_position,
    gpu_memory=cuda_vram,
    build_info=build_info,
    constrain=_constrain,
)
