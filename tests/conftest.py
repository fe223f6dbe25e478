"""Shared fixtures; shared helpers live in the `tests.helpers` package."""

from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    """Tests marked `network` download real wheels from PyPI: offline they skip, saying why."""
    marked = [item for item in items if item.get_closest_marker("network")]
    if not marked:
        return
    from tests.helpers.network import offline_reason

    reason = offline_reason()
    if reason:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def tiny_bundle() -> Path:
    """Tiny random Qwen2-VL + Qwen3 (thinking) GGUF bundle, built once per recipe into the cache."""
    from export.tiny.bundle import build_tiny_bundle
    return build_tiny_bundle()


@pytest.fixture(scope="session")
def sample_image(tmp_path_factory) -> Path:
    from edge_et.core.images import write_sample_image
    return write_sample_image(tmp_path_factory.mktemp("sample") / "sample.png")
