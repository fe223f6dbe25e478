"""The tiny test bundle: tiny random Qwen2-VL perception + tiny random Qwen3 (thinking) reasoning.

Built once per recipe hash into `<cache>/tiny/<hash>/` (the HF checkpoints under `hf/`, the
bundle under `bundle/`) and reused by every later test session. The whole directory appears
by one rename, so a crashed or concurrent build never leaves a half bundle behind.

    python -m export.tiny_bundle          # prebuild (prints the bundle path)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from export import gguf, tiny
from export.bundle import Stage, verify_bundle, write_bundle
from export.converter import cache_dir

# Everything that shapes the tiny bundle; part of the cache key with the export sources.
TINY_RECIPE: dict[str, Any] = {
    "perception": {"arch": "qwen2vl", "seed": 0, "overrides": {}},
    "reasoning": {"arch": "qwen3", "seed": 1, "overrides": {}},
    "outtype": "f16",
}


def tiny_bundle_dir(root: Path | None = None) -> Path:
    """Where the tiny bundle for the current recipe lives (built or not)."""
    root = Path(root) if root is not None else cache_dir()
    return root / "tiny" / tiny.recipe_hash(TINY_RECIPE) / "bundle"


def build_tiny_bundle(root: Path | None = None) -> Path:
    """Return the directory of the tiny test bundle, building it on first use.

    `root` defaults to the edge-et cache (`$EDGE_ET_CACHE` or `~/.cache/edge-et`). The HF
    checkpoints it was converted from sit beside it, in `<bundle>/../hf/<arch>/`.
    """
    bundle = tiny_bundle_dir(root)
    if verify_bundle(bundle):
        return bundle
    key_dir = bundle.parent
    key_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(key_dir, ignore_errors=True)  # an earlier build that no longer verifies
    tmp = Path(tempfile.mkdtemp(dir=key_dir.parent, prefix=f".{key_dir.name}-"))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        _build_into(tmp / "hf", tmp / "bundle")
        tmp.rename(key_dir)
    except OSError:
        if not verify_bundle(bundle):  # else a concurrent build finished first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return bundle


def _convert_stage(hf_root: Path, out: Path, role: str) -> tuple[Path, Path | None]:
    spec = TINY_RECIPE[role]
    arch = spec["arch"]
    hf_dir = tiny.build(arch, hf_root / arch, seed=spec["seed"], **spec["overrides"])
    ftype, name = TINY_RECIPE["outtype"], f"tiny-{arch}"
    model = gguf.convert(hf_dir, out / f"{role}.{ftype}.gguf", outtype=ftype,
                         pre_tokenizer=tiny.PRE_TOKENIZER, model_name=name)
    mmproj = None
    if tiny.ARCHITECTURES[arch].vision:
        mmproj = gguf.convert(hf_dir, out / f"mmproj.{ftype}.gguf", outtype=ftype, mmproj=True,
                              model_name=name)
    return model, mmproj


def _build_into(hf_root: Path, out: Path) -> None:
    source = "random init from a config in edge-et export/tiny.py (recipe {})"
    key = tiny.recipe_hash(TINY_RECIPE)
    p_model, p_mmproj = _convert_stage(hf_root, out, "perception")
    r_model, _ = _convert_stage(hf_root, out, "reasoning")
    write_bundle(
        out, name="tiny-test",
        description="Tiny random-weight Qwen2-VL perception and Qwen3 thinking reasoning "
                    "for tests; every output is noise.",
        perception=Stage(p_model, mmproj=p_mmproj, n_ctx=4096, random_weights=True,
                         source=source.format(key)),
        reasoning=Stage(r_model, n_ctx=8192, thinking=True, random_weights=True,
                        source=source.format(key)),
    )


def main() -> None:
    """Prebuild the tiny bundle and print its path and build time."""
    start = time.perf_counter()
    path = build_tiny_bundle()
    print(f"{path}  ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    print(path)


if __name__ == "__main__":
    main()
