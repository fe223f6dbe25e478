"""Random checkpoints of real architectures, built offline and deterministically.

The build machines reach no model hub, so tests, demos and benchmarks use checkpoints built
here from a config: tiny ones (a few MB, seconds to build) and full-size "shapes" (the real
layer sizes and vocabulary with random weights, for speed and memory measurements). The
architecture is real and converts with the real converter; only the weights are noise.

Each module in `export.archs` describes its checkpoint as a `Blueprint`; `TinyBuilder`
(export/archs/base.py) turns a blueprint into files the same way for every architecture.

    tiny.build("qwen3", Path("out/qwen3"))                      # tiny
    tiny.build("qwen3", Path("out/qwen3-4b"), shape="qwen3-4b")  # full size, bf16
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edge_et.errors import InputError
from export import archs, tokenizer
from export.archs.base import TinyBuilder

# The tokenizers built here split text as llama.cpp's "qwen2" pre-tokenizer does;
# `ArchSpec.pre_tokenizer` says so per architecture (export.demo uses this name).
PRE_TOKENIZER = tokenizer.PRE_TOKENIZER


def _builder(spec) -> TinyBuilder:
    if not isinstance(spec.build_tiny, TinyBuilder):
        raise InputError(
            f"{spec.name} builds its checkpoints without a blueprint; "
            "parameter counts need one (export.tiny.checkpoints.TinyBuilder)"
        )
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


def build(
    arch: str, out: Path, *, seed: int = 0, shape: str | None = None, **overrides: Any
) -> Path:
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
_SHAPING_MODULES = (
    "tiny/checkpoints.py",
    "tokenizer.py",
    "gguf/converter.py",
    "gguf/files.py",
    "bundle.py",
    "tiny/bundle.py",
    "archs/__init__.py",
    "archs/base.py",
)


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
