"""Fuzz the GGUF header reader: any file gives a GGUFInfo or one GGUFError line."""

from __future__ import annotations

import atexit
import shutil
import struct
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edge_et.formats.gguf import GGUFError, read_gguf_info
from tests.fuzz.mutate import mutated
from tests.helpers.ggufs import mmproj_gguf, text_gguf, write_gguf

FOLDER = Path(tempfile.mkdtemp(prefix="edge-et-fuzz-gguf-"))
atexit.register(shutil.rmtree, FOLDER, True)  # scratch files of this session only


def _seed(write, *args, **extra) -> bytes:
    return write(FOLDER / "seed.gguf", *args, **extra).read_bytes()


def _with_tensor() -> bytes:
    """A header with one f32 tensor and its (aligned) data: reaches the tensor-info parser."""
    head = text_gguf(FOLDER / "t.gguf").read_bytes()
    n_kv = struct.unpack_from("<Q", head, 16)[0]
    name = b"token_embd.weight"
    info = struct.pack("<Q", len(name)) + name + struct.pack("<I2QIQ", 2, 4, 2, 0, 0)
    body = b"GGUF" + struct.pack("<IQQ", 3, 1, n_kv) + head[24:] + info
    return body + b"\0" * (-len(body) % 32) + b"\0" * 32


SEEDS = [
    _seed(text_gguf),
    _seed(mmproj_gguf),
    _seed(write_gguf, "llama"),
    _with_tensor(),
    _seed(write_gguf, "qwen2vl", **{"qwen2vl.context_length": 2**40, "general.alignment": 64}),
]


@given(mutated(SEEDS, max_edits=6))
def test_gguf_header_parses_or_fails_in_one_line(data: bytes):
    path = FOLDER / "fuzzed.gguf"
    path.write_bytes(data)
    try:
        info = read_gguf_info(path)
    except GGUFError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert isinstance(info.metadata, dict)


@given(
    st.lists(
        st.tuples(st.text(max_size=12), st.integers(0, 13), st.binary(max_size=24)), max_size=6
    ),
    st.integers(0, 2**64 - 1),
)
def test_generated_gguf_kv_tables_parse_or_fail_in_one_line(entries, n_tensors):
    """Headers assembled from arbitrary keys, value types and payloads, with a lying tensor count."""
    body = b"".join(
        struct.pack("<Q", len(key.encode())) + key.encode() + struct.pack("<I", kind) + payload
        for key, kind, payload in entries
    )
    path = FOLDER / "generated.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, n_tensors, len(entries)) + body)
    try:
        read_gguf_info(path)
    except GGUFError as exc:
        assert "\n" not in str(exc)
