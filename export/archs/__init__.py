"""The architecture registry: one module per architecture, found by file name, imported lazily.

Every module in this package (except `base` and names starting with "_") declares
`SPEC = ArchSpec(...)`, or `SPECS = [...]` when one file serves several names (LLaVA-OneVision
with a Qwen2 or a Qwen3 language model). A new architecture is one new file; nothing here
lists them.

    archs.get("qwen3")                   # imports export/archs/qwen3.py only
    archs.names(role="perception")       # imports every module (they import nothing heavy)
    archs.for_checkpoint(Path("ckpt"))   # by config.json `model_type`

`ArchSpec.model_types` entries are either a `model_type` ("qwen2_vl") or
"<model_type>/<text_config.model_type>" ("llava_onevision/qwen3") where one outer type has
several language models; the longer, more specific entry wins. Alternatively, a module whose
SPECS share one model_type defines `spec_for(hf_dir) -> ArchSpec` to choose among them.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import pkgutil
import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path

from edge_et.errors import InputError
from export.archs.base import ArchSpec

_NOT_ARCHITECTURES = {"base"}
ROLES = ("reasoning", "perception")


@cache
def _module_names() -> tuple[str, ...]:
    return tuple(
        sorted(
            m.name
            for m in pkgutil.iter_modules(__path__)
            if not m.name.startswith("_") and m.name not in _NOT_ARCHITECTURES
        )
    )


@cache
def _specs_of(module_name: str) -> tuple[ArchSpec, ...]:
    module = importlib.import_module(f"{__name__}.{module_name}")
    specs = getattr(module, "SPECS", None)
    if specs is None:
        specs = [getattr(module, "SPEC", None)]
    specs = tuple(specs)
    for spec in specs:
        if not isinstance(spec, ArchSpec) or spec.role not in ROLES:
            raise TypeError(
                f"export/archs/{module_name}.py must define SPEC or SPECS as "
                f"ArchSpec instances with role in {ROLES}, got {spec!r}"
            )
    return specs


@cache
def _registry() -> dict[str, tuple[ArchSpec, str]]:
    """name -> (spec, module name), over every module."""
    found: dict[str, tuple[ArchSpec, str]] = {}
    for module_name in _module_names():
        for spec in _specs_of(module_name):
            if spec.name in found:
                raise RuntimeError(
                    f"architecture {spec.name!r} is declared by both "
                    f"{found[spec.name][1]}.py and {module_name}.py"
                )
            found[spec.name] = (spec, module_name)
    return found


def _lookup(name: str) -> tuple[ArchSpec, str]:
    # The common case, a module named like the architecture, imports that one file only.
    module_name = name.replace("-", "_")
    if module_name in _module_names():
        for spec in _specs_of(module_name):
            if spec.name == name:
                return spec, module_name
    if name in _registry():
        return _registry()[name]
    raise InputError(f"unknown architecture {name!r}; supported: {', '.join(names())}")


def get(name: str) -> ArchSpec:
    """The spec registered as `name`; a InputError listing the valid names if there is none."""
    return _lookup(name)[0]


def names(role: str | None = None) -> list[str]:
    """Registered architecture names, sorted; only those of `role` ("reasoning" or
    "perception") when given."""
    if role is not None and role not in ROLES:
        raise InputError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return sorted(n for n, (spec, _) in _registry().items() if role in (None, spec.role))


def _read_config(hf_dir: Path) -> dict:
    path = Path(hf_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{hf_dir} has no config.json: is it a Hugging Face checkpoint folder?"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict):
        raise InputError(f"{path} is not a JSON object")
    return config


def for_checkpoint(hf_dir: Path) -> ArchSpec:
    """The spec that handles the HF checkpoint in `hf_dir`, by its config.json `model_type`
    (and `text_config.model_type` where that decides); InputError when none does."""
    config = _read_config(hf_dir)
    outer = config.get("model_type")
    text = (config.get("text_config") or {}).get("model_type")
    for key in (f"{outer}/{text}", outer):
        matches = [
            (spec, module) for spec, module in _registry().values() if key in spec.model_types
        ]
        if len(matches) == 1:
            return matches[0][0]
        if matches:
            return _choose(hf_dir, key, matches)
    known = sorted({t for spec, _ in _registry().values() for t in spec.model_types})
    raise InputError(
        f"{hf_dir}: model_type {outer!r} is not supported; supported model "
        f"types: {', '.join(known)}"
    )


def _choose(hf_dir: Path, key: str, matches: list[tuple[ArchSpec, str]]) -> ArchSpec:
    """Several specs of one module share a model_type: that module's `spec_for` decides."""
    modules = {module for _, module in matches}
    chooser = None
    if len(modules) == 1:
        chooser = getattr(importlib.import_module(f"{__name__}.{modules.pop()}"), "spec_for", None)
    if chooser is None:
        raise RuntimeError(
            f"model_type {key!r} is claimed by {', '.join(spec.name for spec, _ in matches)}"
        )
    try:
        return chooser(hf_dir)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def source_files(name: str) -> list[Path]:
    """The module file of architecture `name` and every `export` module it imports,
    transitively (lazy imports inside functions included): the code a tiny build of
    `name` depends on, for cache keys."""
    _, module_name = _lookup(name)
    todo = [Path(__file__).parent / f"{module_name}.py"]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += _imported_export_modules(path)
    return sorted(seen)


_EXPORT_ROOT = Path(__file__).resolve().parents[1]  # the `export` package


def _module_file(dotted: str) -> Path | None:
    """The file of module `export.a.b` (a module or a package), if it is one."""
    parts = dotted.split(".")
    if parts[0] != "export":
        return None
    base = _EXPORT_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_export_modules(path: Path) -> list[Path]:
    """Files of the `export` modules that `path` imports, at any depth of its code."""
    package = "export." + ".".join(path.resolve().relative_to(_EXPORT_ROOT).parent.parts)
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from .x import y
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]  # submodules
    files = {_module_file(name.rstrip(".")) for name in names}
    # export/__init__.py only documents the package: editing it must not rebuild anything.
    return [f for f in files if f is not None and f != _EXPORT_ROOT / "__init__.py"]


def prepared_copy(hf_dir: Path, work_dir: Path, edit: Callable[[dict], bool]) -> Path:
    """A converter-ready view of `hf_dir` whose config.json is changed by `edit`.

    `edit(config)` changes the dict in place and returns True when it changed anything;
    then `work_dir` gets hard links to every file (a copy where links are impossible) and
    a new config.json, and is returned. Otherwise `hf_dir` itself is returned. The user's
    files are never written: the new config.json replaces the link, not its target.
    """
    hf_dir, work_dir = Path(hf_dir), Path(work_dir)
    config = _read_config(hf_dir)
    if not edit(config):
        return hf_dir
    if work_dir.exists():
        shutil.rmtree(work_dir)
    shutil.copytree(hf_dir, work_dir, copy_function=_link_or_copy, symlinks=False)
    target = work_dir / "config.json"
    target.unlink()
    target.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return work_dir


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # weights can be many GB; the converter only reads them
    except OSError:
        shutil.copy2(src, dst)
