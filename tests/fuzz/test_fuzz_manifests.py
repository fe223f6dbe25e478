"""Fuzz bundle manifests, as JSON values and as bytes: load (and plan) or one EdgeEtError line.

The planner runs on every manifest that loads: it reads the manifest's n_ctx, memory budget
and decoding values, so a value that validation let through must not crash it either.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edge_et.bundle.manifest import Bundle
from edge_et.errors import EdgeEtError
from edge_et.runtime.plan import plan_bundle
from tests.fuzz.mutate import mutated
from tests.helpers.bundles import make_bundle

SCRATCH = Path(tempfile.mkdtemp(prefix="edge-et-fuzz-bundle-"))
atexit.register(shutil.rmtree, SCRATCH, True)  # scratch files of this session only
FOLDER = make_bundle(SCRATCH / "b")
VALID = json.loads((FOLDER / "bundle.json").read_text())
BASELINE = 100 << 20  # the runtime's own RSS, given: measuring it per example is slow

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(
        [
            "vlm.gguf",
            "llm.gguf",
            "mmproj.gguf",
            "../llm.gguf",
            "/etc/passwd",
            "",
            "6GB",
            "llama.cpp",
            "onnx",
            "qwen2vl",
            "\0",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "format",
    "name",
    "perception",
    "reasoning",
    "prompts",
    "decoding",
    "memory",
    "perception.model",
    "perception.mmproj",
    "perception.backend",
    "perception.arch",
    "perception.n_ctx",
    "perception.sha256",
    "perception.image_max_tokens",
    "reasoning.model",
    "reasoning.thinking",
    "reasoning.n_ctx",
    "reasoning.backend",
    "reasoning.mmproj",
    "decoding.extract",
    "decoding.think",
    "memory.budget",
    "prompts.extract",
]


@st.composite
def edited_manifests(draw):
    """The valid manifest with a few keys set to arbitrary JSON values or removed."""
    manifest = json.loads(json.dumps(VALID))
    for dotted in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4)):
        *parents, key = dotted.split(".")
        target = manifest
        for part in parents:
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = draw(VALUES)
    return manifest


def _load_and_plan(text: bytes) -> None:
    (FOLDER / "bundle.json").write_bytes(text)
    try:
        bundle = Bundle.load(FOLDER)
        plan_bundle(bundle, baseline=BASELINE)
    except EdgeEtError as exc:
        assert "\n" not in str(exc) and str(exc)


@given(st.one_of(edited_manifests(), VALUES))
def test_manifest_json_values_load_or_fail_in_one_line(manifest):
    _load_and_plan(json.dumps(manifest).encode())


@given(mutated([json.dumps(VALID).encode(), json.dumps(VALID, indent=2).encode()], max_edits=4))
def test_manifest_bytes_load_or_fail_in_one_line(data: bytes):
    _load_and_plan(data)
