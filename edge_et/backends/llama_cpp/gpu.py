"""VRAM as llama.cpp sees it: ggml's own device API (bound here with ctypes: llama-cpp-python
does not bind it), else nvidia-smi; None on a CPU-only build, where no VRAM can be used anyway."""

from __future__ import annotations

import ctypes
import os

from edge_et.memory.probes import VRAM, nvidia_smi_memory

_GGML_DEV_GPU = 1  # enum ggml_backend_dev_type: CPU 0, GPU 1, IGPU 2, ACCEL 3


def cuda_vram() -> VRAM | None:
    """VRAM of a CUDA (or other GPU) build of llama.cpp; None on a CPU-only build or without one."""
    try:
        import llama_cpp
    except ImportError:
        return None
    if not llama_cpp.llama_supports_gpu_offload():
        return None
    return (
        ggml_gpu_memory(os.path.join(os.path.dirname(llama_cpp.__file__), "lib"))
        or nvidia_smi_memory()
    )


def ggml_gpu_memory(lib_dir: str) -> VRAM | None:
    """The first GPU device of ggml's registry, through ggml_backend_dev_memory."""
    try:
        lib = ctypes.CDLL(_ggml_library(lib_dir))
        lib.ggml_backend_dev_count.restype = ctypes.c_size_t
        lib.ggml_backend_dev_get.restype = ctypes.c_void_p
        lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        lib.ggml_backend_dev_type.restype = ctypes.c_int
        lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_name.restype = ctypes.c_char_p
        lib.ggml_backend_dev_name.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_memory.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(ctypes.c_size_t),
        ]
    except (OSError, AttributeError):
        return None
    for index in range(lib.ggml_backend_dev_count()):
        device = lib.ggml_backend_dev_get(index)
        if lib.ggml_backend_dev_type(device) != _GGML_DEV_GPU:
            continue
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        lib.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        name = (lib.ggml_backend_dev_name(device) or b"GPU").decode(errors="replace")
        return VRAM(free.value, total.value, name, "ggml_backend_dev_memory")
    return None


def _ggml_library(lib_dir: str) -> str:
    for name in ("libggml.so", "libggml.dylib", "ggml.dll"):
        if os.path.exists(os.path.join(lib_dir, name)):
            return os.path.join(lib_dir, name)
    raise OSError("no ggml library beside llama_cpp")
