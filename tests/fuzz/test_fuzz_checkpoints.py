"""Fuzz the export's input checks: a tiny checkpoint with its config.json, tokenizer.json or
safetensors header mutated is either accepted or refused in one InputError line, never a traceback.

Two surfaces, as the runtime's inputs are fuzzed: `arch_spec_for` (the architecture lookup and
export/checkpoint.py's checks, what every export command runs first) in-process (hundreds of inputs
a second, the `ci` profile's few hundred each), and `export_gguf` itself on a handful (the converter
runs in a subprocess, seconds each): whatever the checks let through, the conversion either
succeeds or fails as one EdgeEtError line, and leaves nothing at `--out`.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("safetensors")
from safetensors.numpy import save_file

from edge_et.errors import EdgeEtError, InputError
from export.pipeline import arch_spec_for
from tests.fuzz.mutate import mutated

SCRATCH = Path(tempfile.mkdtemp(prefix="edge-et-fuzz-checkpoint-"))
atexit.register(shutil.rmtree, SCRATCH, True)  # scratch files of this session only
FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
)


def _small_weights(path: Path) -> bytes:
    """A safetensors file of a few small tensors (f32, f16, i64): its header is what is fuzzed."""
    save_file(
        {
            "model.embed_tokens.weight": np.zeros((8, 4), np.float32),
            "model.norm.weight": np.ones(4, np.float16),
            "position": np.arange(3),
        },
        str(path),
        metadata={"format": "pt"},
    )
    return path.read_bytes()


@pytest.fixture(scope="module")
def seeds(tiny_bundle) -> dict[str, bytes]:
    """The tiny Qwen3 checkpoint's files (the tests' own, built once and cached)."""
    source = tiny_bundle.parent / "hf" / "qwen3"
    found = {name: (source / name).read_bytes() for name in FILES if (source / name).exists()}
    found["model.safetensors"] = _small_weights(SCRATCH / "weights.safetensors")
    return found


def _write(folder: Path, seeds: dict[str, bytes], **changed: bytes) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, data in {**seeds, **changed}.items():
        (folder / name).write_bytes(data)
    return folder


def _check(folder: Path) -> None:
    """What every export command runs first: the architecture lookup and the file checks."""
    try:
        arch_spec_for(folder, "reasoning")
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**65), 2**65),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["256", "", "qwen3", "llava", "1e3", "-1"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = [
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "head_dim",
    "intermediate_size",
    "rms_norm_eps",
    "rope_theta",
    "eos_token_id",
    "tie_word_embeddings",
    "text_config",
    "vision_config",
    "text_config.hidden_size",
    "vision_config.patch_size",
    "max_position_embeddings",
]


@st.composite
def edited_configs(draw, seed: dict) -> dict:
    """The valid config with a few fields set to arbitrary JSON values or removed."""
    config = json.loads(json.dumps(seed))
    for dotted in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3)):
        *parents, key = dotted.split(".")
        target = config
        for part in parents:
            target = target.setdefault(part, {}) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = draw(VALUES)
    return config


SHARED = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@SHARED
@given(data=st.data())
def test_config_values_are_accepted_or_one_line(seeds, data):
    config = data.draw(st.one_of(edited_configs(json.loads(seeds["config.json"])), VALUES))
    _check(_write(SCRATCH / "config", seeds, **{"config.json": json.dumps(config).encode()}))


@SHARED
@given(data=st.data())
def test_config_bytes_are_accepted_or_one_line(seeds, data):
    text = data.draw(mutated([seeds["config.json"]], max_edits=4))
    _check(_write(SCRATCH / "config-bytes", seeds, **{"config.json": text}))


@SHARED
@given(data=st.data())
def test_tokenizer_files_are_accepted_or_one_line(seeds, data):
    name = data.draw(st.sampled_from([n for n in FILES[1:] if n in seeds]))
    text = data.draw(mutated([seeds[name]], max_edits=4))
    _check(_write(SCRATCH / "tokenizer", seeds, **{name: text}))


@SHARED
@given(data=st.data())
def test_safetensors_headers_are_accepted_or_one_line(seeds, data):
    weights = seeds["model.safetensors"]
    length = int.from_bytes(weights[:8], "little")
    head = data.draw(mutated([weights[: 8 + length]], max_edits=4))
    _check(
        _write(SCRATCH / "weights", seeds, **{"model.safetensors": head + weights[8 + length :]})
    )


# --- the export itself, on a few mutations the checks let through ---------------------------------


@pytest.fixture(scope="module")
def checkpoint(tiny_bundle) -> dict[str, bytes]:
    source = tiny_bundle.parent / "hf" / "qwen3"
    return {path.name: path.read_bytes() for path in source.iterdir() if path.is_file()}


CONVERTIBLE_EDITS = st.fixed_dictionaries(
    {},
    optional={
        "hidden_size": st.sampled_from([128, 512]),
        "num_hidden_layers": st.sampled_from([1, 3]),
        "vocab_size": st.sampled_from([1, 1599, 4096]),
        "head_dim": st.sampled_from([32, 128]),
        "num_key_value_heads": st.sampled_from([1, 4]),
        "intermediate_size": st.sampled_from([1, 1024]),
        "tie_word_embeddings": st.booleans(),
    },
)


@settings(
    max_examples=int(os.environ.get("EDGE_ET_FUZZ_EXPORTS", "3")),
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(edits=CONVERTIBLE_EDITS)
def test_export_of_a_config_that_disagrees_with_its_weights_is_one_line(
    checkpoint, tmp_path_factory, edits
):
    """Typed and consistent, yet not the weights' shapes: the converter's refusal is one line."""
    from export.pipeline import export_gguf

    config = {**json.loads(checkpoint["config.json"]), **edits}
    root = tmp_path_factory.mktemp("export")
    folder = _write(root / "hf", checkpoint, **{"config.json": json.dumps(config).encode()})
    try:
        export_gguf(out=root / "out", reasoning=folder, quant="F16", validate=False)
    except EdgeEtError as exc:
        assert "\n" not in str(exc) and str(exc)
        assert not (root / "out").exists()
    assert not [p for p in root.iterdir() if ".partial-" in p.name]
