"""Each xdist worker keeps its own cores (tests/conftest.py), and what it starts inherits them."""

import os
import subprocess
import sys

import pytest

from tests.conftest import worker_cores


def test_workers_share_the_cores_out_without_overlap():
    shares = [worker_cores(f"gw{i}", 3, set(range(8))) for i in range(3)]
    assert shares == [{0, 3, 6}, {1, 4, 7}, {2, 5}]
    assert worker_cores("gw1", 2, {4, 9}) == {9}
    assert worker_cores("gw1", 4, {0, 1}) == {0, 1}  # fewer cores than workers: all of them
    assert worker_cores("gw0", 1, {0, 1}) == {0, 1}


@pytest.mark.skipif("PYTEST_XDIST_WORKER" not in os.environ, reason="runs under xdist only")
def test_this_worker_and_its_children_run_on_its_own_cores():
    from edge_et.core.host import usable_cores

    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    everything = os.sched_getaffinity(os.getppid())  # the pytest process that started the workers
    mine = os.sched_getaffinity(0)
    assert mine == worker_cores(os.environ["PYTEST_XDIST_WORKER"], workers, everything)
    child = subprocess.run(
        [sys.executable, "-c", "from edge_et.core.host import usable_cores; print(usable_cores())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(child.stdout) == usable_cores() == len(mine)


def test_folders_that_share_a_costly_fixture_stay_in_one_worker(request):
    """xdist's `loadgroup` sends tests by the group suffix of their ids; without it, each
    worker started its own Ray (tests/conftest.py says why the marks come first)."""
    from tests.conftest import TESTS, XDIST_GROUPS

    if not request.config.getoption("loadgroup", default=False):
        pytest.skip("runs under `--dist loadgroup` (make test) only")
    for item in request.session.items:
        parts = item.path.relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in XDIST_GROUPS:
            assert item.nodeid.endswith("@" + XDIST_GROUPS[parts[0]]), item.nodeid
