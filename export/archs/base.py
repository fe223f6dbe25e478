"""What an architecture module declares: one file per architecture.

Each module under `export/archs/` defines `SPEC = ArchSpec(...)`; `export.archs` finds
them by name. Most describe their random checkpoint as a `Blueprint` that `TinyBuilder`
turns into files the same way for every architecture. The export pipeline, the tiny-model builder, the parity checker and the
tests only ever go through these fields, so a new architecture is one new file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


# Weights of full-size shapes: small normal noise, like transformers' initializer_range.
_INIT_STD = 0.02


@dataclass(frozen=True)
class Blueprint:
    """What one random checkpoint is made of, before any weight exists.

    Attributes:
        model_class: the transformers class, e.g. `Qwen3ForCausalLM`.
        config: its config; `dtype` float32 (tiny: transformers' own init) or bfloat16
            (shapes: a cheap seeded init that never holds an f32 copy).
        tokenizer: a transformers tokenizer whose `chat_template` is set (saved into
            tokenizer_config.json).
        image_processor: saved beside the weights (`preprocessor_config.json`) for VLMs.
        processor_config: extra keys written to `processor_config.json` (Gemma 3 keeps
            `image_seq_length` there, and the converter reads it).
        config_edit: changes to the saved `config.json` (in place; any return value is
            ignored) for keys that transformers 4.57 does not write but real hub checkpoints
            have, so that a tiny checkpoint looks like a real one.
    """

    model_class: type
    config: Any
    tokenizer: Any
    image_processor: Any | None = None
    processor_config: dict[str, Any] = field(default_factory=dict)
    config_edit: Callable[[dict], Any] | None = None


class TinyBuilder:
    """`ArchSpec.build_tiny` for an architecture described by `blueprint(**overrides)`."""

    def __init__(self, blueprint: Callable[..., Blueprint]):
        self.blueprint = blueprint

    def __call__(self, out: Path, *, seed: int = 0, **overrides: Any) -> Path:
        """Write the seeded random checkpoint into the (new or empty) folder `out`."""
        bp = self.blueprint(**overrides)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(random_model(bp, seed), bp, out)
        (out / "tiny_recipe.json").write_text(
            json.dumps(
                {"seed": seed, "random_weights": True, "overrides": overrides}, sort_keys=True
            )
            + "\n"
        )
        return out

    def parameter_counts(self, **overrides: Any) -> tuple[int, int]:
        """`count_parameters` of the blueprint for `overrides`."""
        return count_parameters(self.blueprint(**overrides))


def count_parameters(bp: Blueprint) -> tuple[int, int]:
    """(all parameters, token-embedding + output-head parameters) of the model `bp`
    describes, counted on the meta device: nothing is allocated, so a 4B shape costs nothing.
    The second number is what model cards leave out of "non-embedding" counts."""
    import torch

    with torch.device("meta"):
        model = bp.model_class(bp.config)
    total = sum(p.numel() for p in model.parameters())  # tied weights are one parameter
    head = model.get_output_embeddings()
    rows = [model.get_input_embeddings().weight] + ([head.weight] if head is not None else [])
    embedding = {id(p): p.numel() for p in rows}
    return total, sum(embedding.values())


def random_model(bp: Blueprint, seed: int):
    """The seeded random model `bp` describes: transformers' own init for float32 configs,
    a cheap in-place fill for bf16 shapes."""
    import torch

    if bp.config.dtype in (torch.bfloat16, "bfloat16"):
        return _cheap_random_model(bp, seed)
    torch.manual_seed(seed)  # transformers' own init, from the global RNG
    model = bp.model_class(bp.config).eval()
    _redraw_zero_matrices(model, seed)
    return model


def _redraw_zero_matrices(model, seed: int) -> None:
    """Give weight matrices that transformers initialises to zero random values.

    Gemma 3's `mm_input_projection_weight` starts at zero: in a random model every image
    feature would then be 0 and the picture could not influence anything.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim >= 2 and not param.any():
                param.normal_(0.0, _INIT_STD, generator=generator)


def _cheap_random_model(bp: Blueprint, seed: int):
    """Build in bf16 on the meta device, then fill each weight in place from a seeded RNG.

    transformers' init would first create f32 weights (16 GB for a 4B model) and run its
    per-module initialisers; here memory peaks at the bf16 model itself.
    """
    import torch

    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("meta"):
            model = bp.model_class(bp.config)
    finally:
        torch.set_default_dtype(default)
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                if param.ndim >= 2:
                    param.normal_(0.0, _INIT_STD, generator=generator)
                elif name == "weight":  # 1-D weights are norm scales
                    # Gemma's RMSNorm multiplies by (1 + weight): its neutral scale is 0.
                    param.fill_(0.0 if "Gemma" in type(module).__name__ else 1.0)
                else:
                    param.zero_()
    # Non-persistent buffers (rotary inv_freq) are left unset: they are never saved.
    model.tie_weights()
    return model.eval()


def save_checkpoint(model, bp: Blueprint, out: Path) -> None:
    """Write `model` with the tokenizer, processor and config edits of `bp` into `out`."""
    model.save_pretrained(out, safe_serialization=True)
    # The chat template inside tokenizer_config.json, where every reader (transformers,
    # the converter's gguf-py, older tools) finds it, not in 4.57's chat_template.jinja.
    bp.tokenizer.save_pretrained(out, save_jinja_files=False)
    if bp.image_processor is not None:
        bp.image_processor.save_pretrained(out)
    if bp.processor_config:
        (out / "processor_config.json").write_text(
            json.dumps(bp.processor_config, indent=2, sort_keys=True) + "\n"
        )
    if bp.config_edit is not None:
        path = out / "config.json"
        config = json.loads(path.read_text())
        bp.config_edit(config)
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / "generation_config.json").unlink(missing_ok=True)  # random weights: no sampling advice
