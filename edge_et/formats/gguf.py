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
# `general.architecture` of a vision projector (llama.cpp's mmproj): not a language model.
MMPROJ_ARCH = "clip"

# GGUF value types (gguf.h: enum gguf_type).
SCALAR_TYPES = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, ARRAY_TYPE = 8, 9

# llama_ftype values written as general.file_type by the converter and quantizer.
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "BF16",
}


# ggml_type → (elements per block, bytes per block), from ggml.c's type_traits.
GGML_TYPE_SIZES = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    9: (32, 36),
    10: (256, 84),
    11: (256, 110),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
    15: (256, 292),
    16: (256, 66),
    17: (256, 74),
    18: (256, 98),
    19: (256, 50),
    20: (32, 18),
    21: (256, 110),
    22: (256, 82),
    23: (256, 136),
    24: (1, 1),
    25: (1, 2),
    26: (1, 4),
    27: (1, 8),
    28: (1, 8),
    29: (256, 56),
    30: (1, 2),
    34: (256, 54),
    35: (256, 66),
    39: (32, 17),
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the table: its shape, ggml type, offset in the data section, and bytes."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    nbytes: int | None  # None for a ggml type this reader does not know


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
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0

    @property
    def tensor_bytes(self) -> int:
        """Bytes of all tensor data (the weights), as the header declares them."""
        return sum(t.nbytes or 0 for t in self.tensors)

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


class GGUFReader:
    """A cursor over a mapped GGUF file: unpacks values and skips what it does not need."""

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
        raw = self.buf[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def skip_array(self, item_type: int, count: int) -> None:
        if item_type in SCALAR_TYPES:
            self.pos += struct.calcsize(SCALAR_TYPES[item_type]) * count
        elif item_type == _STRING:
            for _ in range(count):
                length = self.unpack(
                    "<Q"
                )  # read first: `pos += unpack()` would lose unpack's advance
                self.pos += length
        else:
            raise GGUFError(f"unsupported nested array type {item_type}")
        if self.pos > len(self.buf):
            raise GGUFError("file ends inside its header (truncated?)")

    def value(self, value_type: int):
        if value_type in SCALAR_TYPES:
            return self.unpack(SCALAR_TYPES[value_type])
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
            return _parse(path, size, GGUFReader(buf))


def _parse(path: Path, size: int, reader: GGUFReader) -> GGUFInfo:
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
        if value_type == ARRAY_TYPE:
            item_type, count = reader.unpack("<I"), reader.unpack("<Q")
            info.array_lengths[key] = count
            reader.skip_array(item_type, count)
        else:
            info.metadata[key] = reader.value(value_type)
    info.tensors = [_tensor_info(reader) for _ in range(n_tensors)]
    alignment = int(info.metadata.get("general.alignment", 32)) or 32
    info.data_offset = -(-reader.pos // alignment) * alignment
    _check_data_fits(info)
    return info


def _tensor_info(reader: GGUFReader) -> TensorInfo:
    name = reader.string()
    n_dims = reader.unpack("<I")
    if n_dims > 8:
        raise GGUFError(f"tensor '{name}' claims {n_dims} dimensions (corrupt?)")
    shape = tuple(reader.unpack("<Q") for _ in range(n_dims))
    ggml_type, offset = reader.unpack("<I"), reader.unpack("<Q")
    nbytes = None
    if ggml_type in GGML_TYPE_SIZES:
        block, size = GGML_TYPE_SIZES[ggml_type]
        elements = 1
        for dim in shape:
            elements *= dim
        nbytes = elements // block * size
    return TensorInfo(name=name, shape=shape, ggml_type=ggml_type, offset=offset, nbytes=nbytes)


def _check_data_fits(info: GGUFInfo) -> None:
    """A download cut short keeps a sound header; the tensor extents reveal it."""
    ends = [t.offset + t.nbytes for t in info.tensors if t.nbytes is not None]
    if not ends:
        return
    needed = info.data_offset + max(ends)
    if needed > info.size_bytes:
        raise GGUFError(
            f"truncated: its tensors need {needed:,} bytes but the file has "
            f"{info.size_bytes:,} (incomplete download?)"
        )
