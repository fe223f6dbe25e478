"""A text GGUF (a catalog reasoner, any quantization) as a float32 transformers checkpoint.

transformers reads GGUF files itself (`from_pretrained(..., gguf_file=...)`): it maps the
names, undoes the converter's permutations and dequantizes. The weights are the file's, not
the checkpoint it was quantized from: a Q4_K_M reasoner comes back as its dequantized Q4_K_M
weights in float32. That is what an ONNX export of "the same model" must start from, so that the
two formats compare the same weights (benchmarks/onnx_vs_gguf.py, `export mobile --bundle`).

Cached by the file's sha256 under `<cache>/gguf-hf/`, or at a caller's `target`.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from edge_et.core.cache import cache_root
from edge_et.errors import InputError
from edge_et.formats.gguf import read_gguf_info


def supported_architectures() -> set[str]:
    """GGUF `general.architecture` values transformers 4.57 can read back."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    return set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"}


def float_checkpoint(gguf_file: Path, *, target: Path | None = None,
                     say=lambda label: None) -> Path:
    """The float32 transformers checkpoint of the text GGUF `gguf_file`, written once into
    `target` (default: the cache, keyed by the file's sha256) and then reused."""
    gguf_file = Path(gguf_file)
    arch = read_gguf_info(gguf_file).architecture
    if arch not in supported_architectures():
        raise InputError(f"{gguf_file.name}: transformers cannot read a {arch!r} GGUF back into a "
                         f"checkpoint (it reads {', '.join(sorted(supported_architectures()))})")
    target = Path(target) if target is not None else cache_root() / "gguf-hf" / _sha256(gguf_file)[:16]
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say(f"reading {gguf_file} into transformers (dequantized to float32)")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a killed read leaves no half checkpoint there.
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        folder, name = gguf_file.parent, gguf_file.name
        AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(scratch)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        model.save_pretrained(scratch, safe_serialization=True)
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
