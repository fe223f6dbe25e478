"""Ray Data plumbing shared by the batch runner and extraction tuning: the ordered dataset of
rows, the read step on the driver's node, a stage's actor pool, and reading the results back
in input order with Ray's failures turned into one-line errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from edge_et.distributed.cluster import RaySettings, ray_failure, require_ray
from edge_et.distributed.pictures import read_on_driver_node
from edge_et.distributed.rows import payload_of
from edge_et.distributed.sizing import StagePool
from edge_et.errors import EdgeEtError


def ordered_dataset(rows: list[dict], settings: RaySettings):
    """A dataset of `rows` that keeps their order, one row per block (a block is the unit a
    task or an actor call takes, so lines spread over every actor); with bytes transport, the
    pictures read on this node first."""
    ray = require_ray()
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # results come back in input order
    context.enable_progress_bars = False  # the CLI draws its own, with counts and ETA
    context.print_on_execution_start = False
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
    if settings.images == "bytes":
        here = {"ray.io/node-id": ray.get_runtime_context().get_node_id()}  # every node's label
        # I/O only: no CPU reserved, so it never waits behind the actors that hold them all.
        dataset = dataset.map_batches(
            read_on_driver_node, batch_size=1, batch_format="numpy", num_cpus=0, label_selector=here
        )
    return dataset


def through_pool(dataset, worker: type, pool: StagePool, job):
    """`dataset` through one stage's actor pool: each actor built once with `job`."""
    ray = require_ray()
    return dataset.map_batches(
        worker,
        fn_constructor_kwargs={"job": job},
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=pool.actors),
        num_cpus=pool.threads,
        memory=pool.memory,
    )


def results(dataset, stop: Callable[[], bool]) -> Iterator[tuple[int, dict]]:
    """(index, payload) of each row in input order until `stop()`; a failure inside Ray (a model
    that would not load on a worker, a bundle a node cannot read) as its EdgeEtError."""
    try:
        for entry in dataset.iter_rows():
            yield int(entry["index"]), payload_of(entry)
            if stop():
                return
    except EdgeEtError:
        raise
    except Exception as exc:  # noqa: BLE001 - Ray Data wraps a worker's error in its own kinds
        raise ray_failure(exc) from None
