"""Shared fixtures; shared helpers live in the `tests.helpers` package."""

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# `make test` runs the suite in two processes (pytest-xdist, `--dist loadgroup`). The tests of
# a folder whose costly fixture is package- or session-wide stay in one process, so it starts
# once: the local Ray of tests/distributed, the one `edge-et serve` of tests/serve.
XDIST_GROUPS = {"distributed": "ray", "serve": "serve"}


def worker_cores(worker: str, workers: int, cores: set[int]) -> set[int]:
    """The cores xdist worker `worker` ("gw1") keeps: every `workers`-th one, its own share.

    Fewer cores than workers: all of them (nothing to share out)."""
    if workers < 2 or len(cores) < workers:
        return cores
    return set(sorted(cores)[int(worker.removeprefix("gw")) :: workers])


def pytest_configure(config):
    """Each xdist worker runs on its own cores, and so do the processes it starts.

    llama.cpp's threads wait for each other by spinning: when two workers' models (each with
    a thread per core) share the cores, each spins through its time slice waiting for a
    thread the other has pushed off. CI measured the tiny reasoner at 3.4 tokens/s that way
    (8,500 alone), and a test ran past its 300 s limit. The runtime sizes its threads by the
    affinity mask (`core/host.usable_cores`), as `taskset` users expect, so a pinned worker
    runs its models with its own cores' threads.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        os.sched_setaffinity(0, worker_cores(worker, workers, os.sched_getaffinity(0)))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Folders that share a costly fixture stay in one xdist worker; tests marked `network`
    download real wheels from PyPI: offline they skip, saying why.

    First among the hooks: xdist's own reads the `xdist_group` marks in this same hook, and a
    conftest's implementation otherwise runs after it (CI then started Ray in both workers)."""
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
