"""Write minimal GGUF headers (no tensors) for bundle-validation tests."""

from __future__ import annotations

import struct
from pathlib import Path


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _value(value) -> bytes:
    if isinstance(value, bool):
        return struct.pack("<I?", 7, value)
    if isinstance(value, int):
        return struct.pack("<IQ", 10, value)
    if isinstance(value, float):
        return struct.pack("<If", 6, value)
    if isinstance(value, list):  # arrays of strings
        return struct.pack("<IIQ", 9, 8, len(value)) + b"".join(_string(v) for v in value)
    return struct.pack("<I", 8) + _string(str(value))


def write_gguf(path: Path, arch: str, **extra) -> Path:
    """A header-only GGUF v3 with general.architecture = arch plus `extra` keys."""
    meta = {"general.architecture": arch, "general.name": f"fake {arch}", **extra}
    body = b"".join(_string(k) + _value(v) for k, v in meta.items())
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(meta)) + body)
    return path


def text_gguf(path: Path, arch: str = "qwen3") -> Path:
    return write_gguf(
        path,
        arch,
        **{
            f"{arch}.context_length": 4096,
            "general.file_type": 1,
            "tokenizer.ggml.tokens": ["a", "b", "c"],
        },
    )


def mmproj_gguf(path: Path) -> Path:
    return write_gguf(
        path, "clip", **{"clip.has_vision_encoder": True, "clip.projector_type": "qwen2vl_merger"}
    )
