"""Shared fixtures; shared helpers live in the `tests.helpers` package."""

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# `make test` runs the suite in two processes (pytest-xdist, `--dist loadgroup`). The tests of
# a folder whose costly fixture is package- or session-wide stay in one process, so it starts
# once: the local Ray of tests/distributed, the one `edge-et serve` of tests/serve.
XDIST_GROUPS = {"distributed": "ray", "serve": "serve"}


def pytest_collection_modifyitems(config, items):
    """Folders that share a costly fixture stay in one xdist worker; tests marked `network`
    download real wheels from PyPI: offline they skip, saying why."""
    for item in items:
        parts = Path(item.path).relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in XDIST_GROUPS:
            item.add_marker(pytest.mark.xdist_group(XDIST_GROUPS[parts[0]]))
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
