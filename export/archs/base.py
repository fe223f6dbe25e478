"""What an architecture module declares: one file per architecture (STYLE.md 1 and 7).

Each module under `export/archs/` defines `SPEC = ArchSpec(...)`; `export.archs` finds
them by name. The export pipeline, the tiny-model builder, the parity checker and the
tests only ever go through these fields, so a new architecture is one new file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# (hf_dir, out_file, outtype) -> out_file. outtype is "f32" | "f16" | "q8_0".
MmprojWriter = Callable[[Path, Path, str], Path]
# (hf_dir, work_dir) -> a directory the llama.cpp converter accepts (config fix-ups on a copy).
Prepare = Callable[[Path, Path], Path]


@dataclass(frozen=True)
class ArchSpec:
    """One supported architecture.

    name: registry name used on the command line (`edge-et export tiny NAME`).
    role: "reasoning" (a text LLM) or "perception" (a VLM: text model + mmproj).
    model_types: the `model_type` values of HF config.json files this module handles.
    build_tiny: writes a seeded random HF checkpoint (tokenizer included) and returns its
        folder: build_tiny(out: Path, *, seed: int = 0, **overrides) -> Path.
    shapes: named full-size shapes (e.g. "qwen3-0.6b") as overrides for build_tiny.
    gguf_arch: the GGUF `general.architecture` the text model converts to.
    thinking: the model has a thinking chat template (`<think>` … `</think>`).
    prepare: optional fix-ups before the converter runs (on a copy, never the user's files).
    write_mmproj: optional own mmproj writer for what the converter cannot do (LLaVA-OneVision);
        None means `convert_hf_to_gguf.py --mmproj`.
    pre_tokenizer: llama.cpp pre-tokenizer name to fall back to for unknown tokenizer hashes.
    notes: one line on anything a user should know (shown by `edge-et export list`).
    """

    name: str
    role: str
    model_types: tuple[str, ...]
    build_tiny: Callable[..., Path]
    gguf_arch: str
    shapes: dict[str, dict] = field(default_factory=dict)
    thinking: bool = False
    prepare: Prepare | None = None
    write_mmproj: MmprojWriter | None = None
    pre_tokenizer: str | None = None
    notes: str = ""

    @property
    def is_vlm(self) -> bool:
        return self.role == "perception"
