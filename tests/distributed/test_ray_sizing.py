"""Actor pools sized from the cluster: CPUs = threads, memory = the stage's planned footprint;
a cluster that cannot hold one actor per stage is refused in one line. No Ray needed."""

import subprocess
import sys

import pytest

from edge_et.distributed.cluster import Node, RaySettings, actor_slots
from edge_et.distributed.sizing import plan_pools, stage_memory
from edge_et.errors import InputError
from edge_et.runtime.api import open_pipeline

GIB = 1 << 30


@pytest.fixture(scope="module")
def plan(tiny_bundle):
    with open_pipeline(tiny_bundle, threads=1) as pipeline:
        return pipeline.plan


def test_actor_slots_count_cpus_and_memory_per_node():
    nodes = [Node(cpus=4, memory=8 * GIB), Node(cpus=1, memory=8 * GIB), Node(cpus=8, memory=GIB)]
    assert actor_slots(nodes, threads=2, memory=2 * GIB) == 2 + 0 + 0
    assert actor_slots(nodes, threads=1, memory=GIB // 2) == 4 + 1 + 2


def test_pools_share_the_slots_take_the_flags_and_carry_the_footprint(plan):
    roles = ["perception", "reasoning"]
    nodes = [Node(cpus=8, memory=64 * GIB)]
    pools = plan_pools(plan, roles, 2, RaySettings(), nodes)
    assert [(p.role, p.actors, p.threads) for p in pools] == [
        ("perception", 2, 2),
        ("reasoning", 2, 2),
    ]
    assert (
        pools[0].memory
        == stage_memory(plan, "perception")
        == plan.stages["perception"].total_bytes + plan.baseline_bytes
    )
    pools = plan_pools(plan, roles, 1, RaySettings(reasoning_actors=6), nodes)
    assert [p.actors for p in pools] == [2, 6]


def test_a_cluster_too_small_for_both_stages_is_one_line(plan):
    with pytest.raises(InputError, match="holds 1 actor.*2 asked"):
        plan_pools(
            plan, ["perception", "reasoning"], 1, RaySettings(), [Node(cpus=1, memory=64 * GIB)]
        )
    with pytest.raises(InputError, match="--ray-images"):
        RaySettings(images="disk")


def test_import_edge_et_and_its_distributed_package_do_not_import_ray():
    probe = (
        "import sys, edge_et, edge_et.distributed.batch, edge_et.distributed.tuning, "
        "edge_et.cli.main\nprint('ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
