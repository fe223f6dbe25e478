"""A text GGUF (a catalog reasoner, any quantization) as a float32 transformers checkpoint.

transformers reads GGUF files itself (`from_pretrained(..., gguf_file=...)`): it maps the
names, undoes the converter's permutations and dequantizes. The weights are the file's, not
the checkpoint it was quantized from: a Q4_K_M reasoner comes back as its dequantized Q4_K_M
weights in float32. That is what an ONNX export of "the same model" must start from, so that the
two formats compare the same weights (benchmarks/onnx_vs_gguf.py, `export mobile --bundle`).

Cached under `<cache>/gguf-hf/`, keyed by the file's sha256, this module's source and the
transformers version (a fix here must not be hidden by an old read), or at a caller's `target`.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from edge_et.core.cache import cache_root
from edge_et.errors import ExportError, InputError
from edge_et.formats.gguf import read_gguf_info


def supported_architectures() -> set[str]:
    """GGUF `general.architecture` values transformers 4.57 can read back."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    return set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"}


def float_checkpoint(
    gguf_file: Path, *, target: Path | None = None, say=lambda label: None
) -> Path:
    """The float32 transformers checkpoint of the text GGUF `gguf_file`, written once into
    `target` (default: the cache, keyed by the file's sha256) and then reused."""
    gguf_file = Path(gguf_file)
    arch = read_gguf_info(gguf_file).architecture
    if arch not in supported_architectures():
        raise InputError(
            f"{gguf_file.name}: transformers cannot read a {arch!r} GGUF back into a "
            f"checkpoint (it reads {', '.join(sorted(supported_architectures()))})"
        )
    target = (
        Path(target) if target is not None else cache_root() / "gguf-hf" / _cache_key(gguf_file)
    )
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say(f"reading {gguf_file} into transformers (dequantized to float32)")
    config = _config(gguf_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a killed read leaves no half checkpoint there.
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        folder, name = gguf_file.parent, gguf_file.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        tokenizer.add_tokens(_user_defined_tokens(gguf_file))
        tokenizer.save_pretrained(scratch)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, config=config, dtype=torch.float32
        )
        model.save_pretrained(scratch, safe_serialization=True)
        scratch.rename(target)
    except (
        RuntimeError,
        ValueError,
        KeyError,
    ) as exc:  # transformers' reader: one line, not a traceback
        raise ExportError(
            f"transformers could not read {gguf_file.name} back: {' '.join(str(exc).split())[:300]}"
        ) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _config(gguf_file: Path):
    """transformers' config of the GGUF, with the head size the file records: 4.57 reads
    `rope.dimension_count` into head_dim for llama only, and Qwen3's heads are wider than
    hidden / heads (Qwen3-0.6B: 128, not 64), so its norms would not fit."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    info = read_gguf_info(gguf_file)
    head_dim = info.arch_value("attention.key_length")
    if head_dim and hasattr(config, "head_dim"):
        config.head_dim = int(head_dim)
    return config


def _user_defined_tokens(gguf_file: Path) -> list:
    """The GGUF's USER_DEFINED tokens (`<think>`, `</think>`, `<tool_call>` in Qwen's files),
    which llama.cpp never splits. transformers 4.57 makes only CONTROL tokens atomic, so its
    tokenizer would split "</think>" into five tokens and the runtime's thinking would fail."""
    from gguf import GGUFReader, TokenType  # PyPI's: transformers' own GGUF reader uses it
    from tokenizers import AddedToken

    fields = GGUFReader(gguf_file).fields
    tokens, types = fields.get("tokenizer.ggml.tokens"), fields.get("tokenizer.ggml.token_type")
    if tokens is None or types is None:
        return []
    return [
        AddedToken(bytes(tokens.parts[t]).decode("utf-8"), special=False, normalized=False)
        for t, k in zip(tokens.data, types.data)
        if int(types.parts[k][0]) == TokenType.USER_DEFINED
    ]


def _cache_key(path: Path) -> str:
    from importlib.metadata import version  # not `import transformers`: that takes seconds

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(Path(__file__).read_bytes() + f";transformers={version('transformers')}".encode())
    return digest.hexdigest()[:16]
