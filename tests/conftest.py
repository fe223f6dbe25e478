"""Shared fixtures; shared helpers live in the `tests.helpers` package."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bundle() -> Path:
    """Tiny random Qwen2-VL + Qwen3 (thinking) GGUF bundle, built once per recipe into the cache."""
    from export.tiny.bundle import build_tiny_bundle
    return build_tiny_bundle()


@pytest.fixture(scope="session")
def sample_image(tmp_path_factory) -> Path:
    from edge_et.core.images import write_sample_image
    return write_sample_image(tmp_path_factory.mktemp("sample") / "sample.png")
