"""HF checkpoint -> GGUF (text model and mmproj) and K-quant quantization.

Conversion runs llama.cpp's own converter (see `export.gguf.converter`); quantization runs
llama.cpp's quantizer through llama-cpp-python, so both always match the runtime that will
load the files.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from export.gguf.converter import run_converter

# Types the converter writes directly; anything else is reached by quantizing an f16 file.
CONVERT_TYPES = ("f32", "f16", "bf16", "q8_0")


def convert(
    hf_dir: Path,
    out_file: Path,
    *,
    outtype: str = "f16",
    mmproj: bool = False,
    pre_tokenizer: str | None = None,
    model_name: str | None = None,
) -> Path:
    """Convert the HF checkpoint in `hf_dir` to `out_file` and return `out_file`.

    `mmproj=True` writes the vision projector instead of the text model. `pre_tokenizer`
    names the llama.cpp pre-tokenizer to record when the converter does not recognise the
    tokenizer (locally trained ones); `model_name` sets `general.name`.
    """
    if outtype not in CONVERT_TYPES:
        raise ValueError(
            f"outtype {outtype!r} is not one of {', '.join(CONVERT_TYPES)}; "
            "use quantize() for K-quants"
        )
    hf_dir, out_file = Path(hf_dir).resolve(), Path(out_file).resolve()
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
    return {
        name[len(prefix) :]: getattr(llama_cpp, name)
        for name in dir(llama_cpp)
        if name.startswith(prefix)
    }


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
    params.nthread = threads  # 0: all cores
    dst.parent.mkdir(parents=True, exist_ok=True)
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not dst.is_file():
        raise RuntimeError(f"llama_model_quantize({src.name} -> {qtype}) failed with code {rc}")
    return dst


def architecture(path: Path) -> str:
    """Return a GGUF's `general.architecture` ("qwen3", "qwen2vl", "clip", ...)."""
    from edge_et.formats.gguf import read_gguf_info  # the runtime's header reader: one parser

    return read_gguf_info(path).architecture
