"""Read a GGUF file's header (metadata and tensor table) without loading any weights.

Used to validate bundles before a model is allocated and to describe them (`info`,
and later the memory planner). Pure Python over mmap: a 150k-token vocabulary array
is skipped, not decoded, so even large files answer in milliseconds.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

GGUF_MAGIC = b"GGUF"

# GGUF value types (gguf.h: enum gguf_type).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9

# llama_ftype values written as general.file_type by the converter and quantizer.
FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
              10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S",
              15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}


class GGUFError(ValueError):
    """The file is not a readable GGUF; the message says why in a few words."""


@dataclass
class GGUFInfo:
    """What a GGUF header says about its model."""

    path: Path
    version: int
    size_bytes: int
    metadata: dict[str, object] = field(default_factory=dict)
    array_lengths: dict[str, int] = field(default_factory=dict)
    n_tensors: int = 0

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name", ""))

    @property
    def file_type(self) -> str:
        code = self.metadata.get("general.file_type")
        return FILE_TYPES.get(code, f"type {code}") if code is not None else "unknown"

    def arch_value(self, key: str) -> object:
        """An architecture-scoped value, e.g. `context_length` → `qwen3.context_length`."""
        return self.metadata.get(f"{self.architecture}.{key}")

    @property
    def context_length(self) -> int | None:
        value = self.arch_value("context_length")
        return int(value) if value is not None else None

    @property
    def vocab_size(self) -> int | None:
        return self.array_lengths.get("tokenizer.ggml.tokens")

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None


class _Reader:
    def __init__(self, buf: mmap.mmap):
        self.buf, self.pos = buf, 0

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise GGUFError("file ends inside its header (truncated?)")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        if self.pos + length > len(self.buf):
            raise GGUFError("file ends inside its header (truncated?)")
        raw = self.buf[self.pos:self.pos + length]
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def skip_array(self, item_type: int, count: int) -> None:
        if item_type in _SCALARS:
            self.pos += struct.calcsize(_SCALARS[item_type]) * count
        elif item_type == _STRING:
            for _ in range(count):
                length = self.unpack("<Q")  # read first: `pos += unpack()` would lose unpack's advance
                self.pos += length
        else:
            raise GGUFError(f"unsupported nested array type {item_type}")
        if self.pos > len(self.buf):
            raise GGUFError("file ends inside its header (truncated?)")

    def value(self, value_type: int):
        if value_type in _SCALARS:
            return self.unpack(_SCALARS[value_type])
        if value_type == _STRING:
            return self.string()
        raise GGUFError(f"unknown value type {value_type}")


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Parse the header of `path`; raises GGUFError for anything that is not a sound GGUF."""
    path = Path(path)
    size = path.stat().st_size
    if size < 24:
        raise GGUFError("too small to be a GGUF file")
    with open(path, "rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise GGUFError("not a GGUF file (bad magic)")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(path, size, _Reader(buf))


def _parse(path: Path, size: int, reader: _Reader) -> GGUFInfo:
    reader.pos = 4
    version = reader.unpack("<I")
    if version not in (2, 3):
        raise GGUFError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = reader.unpack("<Q"), reader.unpack("<Q")
    if n_kv > 1_000_000 or n_tensors > 10_000_000:
        raise GGUFError("implausible header counts (corrupt?)")
    info = GGUFInfo(path=path, version=version, size_bytes=size, n_tensors=n_tensors)
    for _ in range(n_kv):
        key = reader.string()
        value_type = reader.unpack("<I")
        if value_type == _ARRAY:
            item_type, count = reader.unpack("<I"), reader.unpack("<Q")
            info.array_lengths[key] = count
            reader.skip_array(item_type, count)
        else:
            info.metadata[key] = reader.value(value_type)
    return info
