"""Cached tiny artifacts: the GGUFs of one tiny architecture, and the tiny test bundle.

Both are built once per recipe hash into the edge-et cache and reused by every later test
session: `tiny_ggufs("qwen3vl")` in `<cache>/tiny-gguf/<hash>/`, the bundle (tiny random
Qwen2-VL perception + tiny random Qwen3 thinking reasoning) in `<cache>/tiny/<hash>/`. Each
directory appears by one rename, so a crashed or concurrent build never leaves half of one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_et.core.cache import cache_root
from export import archs
from export.bundle import Stage, verify_bundle, write_bundle
from export.gguf import files as gguf
from export.tiny import checkpoints as tiny

# Everything that shapes the tiny bundle; part of the cache key with the export sources.
TINY_RECIPE: dict[str, Any] = {
    "perception": {"arch": "qwen2vl", "seed": 0, "overrides": {}},
    "reasoning": {"arch": "qwen3", "seed": 1, "overrides": {}},
    "outtype": "f16",
}


@dataclass(frozen=True)
class TinyGGUFs:
    """The converted files of one tiny checkpoint.

    Attributes:
        hf_dir: the HF checkpoint they were converted from.
        model: the text model GGUF.
        mmproj: the vision projector GGUF (perception architectures only).
    """

    hf_dir: Path
    model: Path
    mmproj: Path | None


def build_once(key_dir: Path, build: Callable[[Path], None], ready: Callable[[Path], bool]) -> None:
    """Build into a temporary sibling of `key_dir` and rename it into place, unless `ready`.

    A concurrent build that finishes first wins; its result is kept.
    """
    if ready(key_dir):
        return
    key_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(key_dir, ignore_errors=True)  # an earlier build that no longer verifies
    tmp = Path(tempfile.mkdtemp(dir=key_dir.parent, prefix=f".{key_dir.name}-"))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        build(tmp)
        tmp.rename(key_dir)
    except OSError:
        if not ready(key_dir):  # else a concurrent build finished first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def convert_tiny(
    arch: str,
    hf_dir: Path,
    model_file: Path,
    mmproj_file: Path | None = None,
    *,
    outtype: str = "f16",
) -> tuple[Path, Path | None]:
    """Convert a tiny checkpoint of `arch` as the export pipeline does: `spec.prepare` on a
    copy, the spec's pre-tokenizer fallback, and for VLMs the mmproj into `mmproj_file`.
    Returns (model_file, mmproj_file or None)."""
    spec = archs.get(arch)
    if spec.is_vlm and mmproj_file is None:
        raise ValueError(f"{arch} is a VLM: name its mmproj file")
    scratch = model_file.parent / f".prepared-{arch}"
    source = spec.prepare(hf_dir, scratch) if spec.prepare else hf_dir
    name = f"tiny-{arch}"
    model = gguf.convert(
        source, model_file, outtype=outtype, pre_tokenizer=spec.pre_tokenizer, model_name=name
    )
    mmproj = None
    if spec.is_vlm:
        mmproj = (
            spec.write_mmproj(source, mmproj_file, outtype)
            if spec.write_mmproj
            else gguf.convert(source, mmproj_file, outtype=outtype, mmproj=True, model_name=name)
        )
    shutil.rmtree(scratch, ignore_errors=True)
    return model, mmproj


def tiny_ggufs(
    arch: str, *, seed: int = 0, outtype: str = "f16", root: Path | None = None, **overrides: Any
) -> TinyGGUFs:
    """Build, convert and cache the tiny checkpoint of `arch`; return its files.

    Cached in `<root or cache>/tiny-gguf/<recipe hash>/`: a second call with the same
    recipe and unchanged export code returns at once.
    """
    recipe = {"arch": arch, "seed": seed, "outtype": outtype, "overrides": overrides}
    root = Path(root) if root is not None else cache_root()
    key_dir = root / "tiny-gguf" / tiny.recipe_hash(recipe)
    done = key_dir / "files.json"

    def build(tmp: Path) -> None:
        hf_dir = tiny.build(arch, tmp / "hf", seed=seed, **overrides)
        vlm = archs.get(arch).is_vlm
        model, mmproj = convert_tiny(
            arch,
            hf_dir,
            tmp / f"model.{outtype}.gguf",
            tmp / f"mmproj.{outtype}.gguf" if vlm else None,
            outtype=outtype,
        )
        names = {"model": model.name, "mmproj": mmproj.name if mmproj else None}
        (tmp / "files.json").write_text(json.dumps(names) + "\n")

    build_once(key_dir, build, lambda d: (d / "files.json").is_file())
    names = json.loads(done.read_text())
    return TinyGGUFs(
        hf_dir=key_dir / "hf",
        model=key_dir / names["model"],
        mmproj=key_dir / names["mmproj"] if names["mmproj"] else None,
    )


def tiny_bundle_dir(root: Path | None = None) -> Path:
    """Where the tiny bundle for the current recipe lives (built or not)."""
    root = Path(root) if root is not None else cache_root()
    return root / "tiny" / tiny.recipe_hash(TINY_RECIPE) / "bundle"


def build_tiny_bundle(root: Path | None = None) -> Path:
    """Return the directory of the tiny test bundle, building it on first use.

    `root` defaults to the edge-et cache (`$EDGE_ET_CACHE` or `~/.cache/edge-et`). The HF
    checkpoints it was converted from sit beside it, in `<bundle>/../hf/<arch>/`.
    """
    bundle = tiny_bundle_dir(root)
    build_once(
        bundle.parent,
        lambda tmp: _build_into(tmp / "hf", tmp / "bundle"),
        lambda key_dir: verify_bundle(key_dir / "bundle"),
    )
    return bundle


def _convert_stage(hf_root: Path, out: Path, role: str) -> tuple[Path, Path | None]:
    spec, outtype = TINY_RECIPE[role], TINY_RECIPE["outtype"]
    hf_dir = tiny.build(
        spec["arch"], hf_root / spec["arch"], seed=spec["seed"], **spec["overrides"]
    )
    mmproj = out / f"mmproj.{outtype}.gguf" if role == "perception" else None
    return convert_tiny(
        spec["arch"], hf_dir, out / f"{role}.{outtype}.gguf", mmproj, outtype=outtype
    )


def _build_into(hf_root: Path, out: Path) -> None:
    source = "random init from a config in edge-et export/archs (recipe {})"
    key = tiny.recipe_hash(TINY_RECIPE)
    p_model, p_mmproj = _convert_stage(hf_root, out, "perception")
    r_model, _ = _convert_stage(hf_root, out, "reasoning")
    write_bundle(
        out,
        name="tiny-test",
        description="Tiny random-weight Qwen2-VL perception and Qwen3 thinking reasoning "
        "for tests; every output is noise.",
        perception=Stage(
            p_model, mmproj=p_mmproj, n_ctx=4096, random_weights=True, source=source.format(key)
        ),
        reasoning=Stage(
            r_model, n_ctx=8192, thinking=True, random_weights=True, source=source.format(key)
        ),
    )
