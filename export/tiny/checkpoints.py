"""Random checkpoints of real architectures, built offline and deterministically.

The build machines reach no model hub, so tests, demos and benchmarks use checkpoints built
here from a config: tiny ones (a few MB, seconds to build) and full-size "shapes" (the real
layer sizes and vocabulary with random weights, for speed and memory measurements). The
architecture is real and converts with the real converter; only the weights are noise.

Each module in `export.archs` describes its checkpoint as a `Blueprint`; `TinyBuilder` turns
a blueprint into files the same way for every architecture.

    tiny.build("qwen3", Path("out/qwen3"))                      # tiny
    tiny.build("qwen3", Path("out/qwen3-4b"), shape="qwen3-4b")  # full size, bf16
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_et.errors import InputError
from export import archs, tokenizer

# The tokenizers built here split text as llama.cpp's "qwen2" pre-tokenizer does;
# `ArchSpec.pre_tokenizer` says so per architecture (export.demo uses this name).
PRE_TOKENIZER = tokenizer.PRE_TOKENIZER

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
        _save(_random_model(bp, seed), bp, out)
        (out / "tiny_recipe.json").write_text(json.dumps(
            {"seed": seed, "random_weights": True, "overrides": overrides}, sort_keys=True) + "\n")
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


def _random_model(bp: Blueprint, seed: int):
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


def _save(model, bp: Blueprint, out: Path) -> None:
    model.save_pretrained(out, safe_serialization=True)
    # The chat template inside tokenizer_config.json, where every reader (transformers,
    # the converter's gguf-py, older tools) finds it, not in 4.57's chat_template.jinja.
    bp.tokenizer.save_pretrained(out, save_jinja_files=False)
    if bp.image_processor is not None:
        bp.image_processor.save_pretrained(out)
    if bp.processor_config:
        (out / "processor_config.json").write_text(
            json.dumps(bp.processor_config, indent=2, sort_keys=True) + "\n")
    if bp.config_edit is not None:
        path = out / "config.json"
        config = json.loads(path.read_text())
        bp.config_edit(config)
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / "generation_config.json").unlink(missing_ok=True)  # random weights: no sampling advice


def _builder(spec) -> TinyBuilder:
    if not isinstance(spec.build_tiny, TinyBuilder):
        raise InputError(f"{spec.name} builds its checkpoints without a blueprint; "
                         "parameter counts need one (export.tiny.checkpoints.TinyBuilder)")
    return spec.build_tiny


def shape_overrides(arch: str, shape: str | None) -> dict[str, Any]:
    """The build overrides of `shape` of `arch` (empty for the tiny model)."""
    spec = archs.get(arch)
    if shape is None:
        return {}
    if shape not in spec.shapes:
        known = ", ".join(sorted(spec.shapes)) or "none"
        raise InputError(f"unknown shape {shape!r} for {arch}; its shapes: {known}")
    return dict(spec.shapes[shape])


def build(arch: str, out: Path, *, seed: int = 0, shape: str | None = None,
          **overrides: Any) -> Path:
    """Build the random checkpoint of `arch` into `out` and return `out`.

    Tiny by default; `shape` (e.g. "qwen3-4b", see `ArchSpec.shapes`) builds a full-size
    one in bf16. `overrides` change single build parameters on top of either.
    """
    spec = archs.get(arch)
    params = {**shape_overrides(arch, shape), **overrides}
    path = spec.build_tiny(Path(out), seed=seed, **params)
    recipe = path / "tiny_recipe.json"
    if recipe.is_file():  # builders made with TinyBuilder write it; name what was built
        data = json.loads(recipe.read_text())
        recipe.write_text(json.dumps({**data, "arch": arch, "shape": shape}, sort_keys=True) + "\n")
    return path


def parameter_counts(arch: str, shape: str | None = None, **overrides: Any) -> tuple[int, int]:
    """(all, embedding) parameter counts of a tiny model or shape, without building it."""
    spec = archs.get(arch)
    return _builder(spec).parameter_counts(**{**shape_overrides(arch, shape), **overrides})


# The export modules whose code shapes any tiny build; editing one rebuilds every cache entry.
# Architecture modules count only for the recipes that name them (see `recipe_hash`).
_SHAPING_MODULES = ("tiny/checkpoints.py", "tokenizer.py", "gguf/converter.py", "gguf/files.py",
                    "bundle.py", "tiny/bundle.py", "archs/__init__.py", "archs/base.py")


def _arch_names(recipe: Any) -> set[str]:
    """Every value of an "arch" key anywhere in `recipe`."""
    if isinstance(recipe, dict):
        found = {recipe["arch"]} if isinstance(recipe.get("arch"), str) else set()
        return found.union(*(_arch_names(v) for v in recipe.values()))
    if isinstance(recipe, (list, tuple)):
        return set().union(*(_arch_names(v) for v in recipe))
    return set()


def recipe_hash(recipe: dict[str, Any]) -> str:
    """A stable 16-hex-digit key for `recipe` plus everything that shapes the built files.

    Covers the recipe itself, the source text of the export modules that build it (the
    shared ones, and for every "arch" the recipe names its module and every export module
    that one imports) and the versions of the libraries that shape weights and conversion:
    a change to any of them rebuilds.
    """
    from importlib.metadata import version  # not `import transformers`: that takes seconds

    here = Path(__file__).resolve().parents[1]  # the `export` package
    h = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    files = [here / name for name in _SHAPING_MODULES]
    for name in sorted(_arch_names(recipe)):
        files += archs.source_files(name)
    for path in sorted({p.resolve() for p in files}):
        h.update(path.relative_to(here).as_posix().encode() + b"\0" + path.read_bytes())
    for dist in ("transformers", "tokenizers", "torch", "llama_cpp_python"):
        h.update(f";{dist}={version(dist)}".encode())
    return h.hexdigest()[:16]
