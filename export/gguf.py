"""HF checkpoint -> GGUF (text model and mmproj), K-quant quantization, GGUF metadata.

Conversion runs llama.cpp's own converter (see `export.converter`); quantization runs
llama.cpp's quantizer through llama-cpp-python, so both always match the runtime that will
load the files.
"""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path
from typing import Any, BinaryIO

from export.converter import run_converter

# Types the converter writes directly; anything else is reached by quantizing an f16 file.
CONVERT_TYPES = ("f32", "f16", "bf16", "q8_0")


def convert(hf_dir: Path, out_file: Path, *, outtype: str = "f16", mmproj: bool = False,
            pre_tokenizer: str | None = None, model_name: str | None = None) -> Path:
    """Convert the HF checkpoint in `hf_dir` to `out_file` and return `out_file`.

    `mmproj=True` writes the vision projector instead of the text model. `pre_tokenizer`
    names the llama.cpp pre-tokenizer to record when the converter does not recognise the
    tokenizer (locally trained ones); `model_name` sets `general.name`.
    """
    if outtype not in CONVERT_TYPES:
        raise ValueError(f"outtype {outtype!r} is not one of {', '.join(CONVERT_TYPES)}; "
                         "use quantize() for K-quants")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    args = [str(hf_dir), "--outtype", outtype, "--outfile", str(out_file)]
    if mmproj:
        args.append("--mmproj")
    if model_name:
        args += ["--model-name", model_name]
    run_converter(args, pre_fallback=pre_tokenizer)
    if not out_file.is_file():
        raise RuntimeError(f"the converter reported success but wrote no {out_file}")
    return out_file


def quant_types() -> dict[str, int]:
    """Map quantization names ("Q4_K_M", "Q8_0", ...) to llama.cpp ftype values."""
    import llama_cpp

    prefix = "LLAMA_FTYPE_MOSTLY_"
    return {name[len(prefix):]: getattr(llama_cpp, name)
            for name in dir(llama_cpp) if name.startswith(prefix)}


def quantize(src: Path, dst: Path, qtype: str = "Q4_K_M", *, threads: int = 0) -> Path:
    """Quantize the f16/f32 GGUF `src` to `dst` with llama.cpp's quantizer; return `dst`.

    K-quants need tensor rows that are multiples of 256; llama.cpp falls back to a legacy
    type (q5_0/q8_0) for narrower tensors, so tiny models quantize but only partly.
    """
    import llama_cpp

    types = quant_types()
    if qtype.upper() not in types:
        raise ValueError(f"unknown quantization {qtype!r}; known: {', '.join(sorted(types))}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = types[qtype.upper()]
    params.nthread = threads
    dst.parent.mkdir(parents=True, exist_ok=True)
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not dst.is_file():
        raise RuntimeError(f"llama_model_quantize({src.name} -> {qtype}) failed with code {rc}")
    return dst


# GGUF value types (gguf spec): struct formats for the scalars, sizes for skipping arrays.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def read_metadata(path: Path) -> dict[str, Any]:
    """Read the scalar and string key/values of a GGUF header (arrays are skipped).

    A few dozen lines instead of importing gguf-py: the converter's copy lives in a cache
    and PyPI's `gguf` may be older than the files llama.cpp writes.
    """
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        _version, _n_tensors, n_kv = struct.unpack("<IQQ", f.read(20))
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = _read_string(f)
            value = _read_value(f, struct.unpack("<I", f.read(4))[0])
            if value is not _SKIPPED:
                meta[key] = value
        return meta


_SKIPPED = object()


def _read_string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", f.read(8))
    return f.read(n).decode("utf-8", errors="replace")


def _read_value(f: BinaryIO, vtype: int) -> Any:
    if vtype in _SCALARS:
        fmt = _SCALARS[vtype]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
    if vtype == _STRING:
        return _read_string(f)
    if vtype == _ARRAY:
        item_type, n = struct.unpack("<IQ", f.read(12))
        if item_type in _SCALARS:
            f.seek(n * struct.calcsize(_SCALARS[item_type]), 1)
        else:
            for _ in range(n):
                _read_value(f, item_type)
        return _SKIPPED
    raise ValueError(f"unknown GGUF value type {vtype}")


def architecture(path: Path) -> str:
    """Return a GGUF's `general.architecture` ("qwen3", "qwen2vl", "clip", ...)."""
    return str(read_metadata(path)["general.architecture"])
