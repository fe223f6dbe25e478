"""Shared fixtures. Tests import `fakes` from this folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest


@pytest.fixture(scope="session")
def tiny_bundle() -> Path:
    """Tiny random Qwen2-VL + Qwen3 (thinking) GGUF bundle, built once per recipe into the cache."""
    from export.tiny_bundle import build_tiny_bundle
    return build_tiny_bundle()


@pytest.fixture(scope="session")
def sample_image(tmp_path_factory) -> Path:
    from edge_et.images import write_sample_image
    return write_sample_image(tmp_path_factory.mktemp("sample") / "sample.png")
