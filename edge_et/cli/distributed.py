"""The `--ray [ADDRESS]` options that `run --batch`, `eval` and `data extract-tuning` share, and
the runner they pick from them: the local one, or edge_et.distributed's on a Ray cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from edge_et.cli.shared import err
from edge_et.runtime.batch import BatchRunner, run_batch

RayOpt = typer.Option(
    None,
    "--ray",
    metavar="[ADDRESS]",
    help="Run on Ray: alone, a local Ray started for the run; or a cluster's HOST:PORT / auto "
    "(pip install 'edge-et\\[ray]'; docs/distributed.md).",
)  # rich markup would eat a bare [ray]
RayCpusOpt = typer.Option(
    None, "--ray-cpus", min=1, help="CPUs of the local Ray (default: all cores)."
)
RayImagesOpt = typer.Option(
    "bytes",
    "--ray-images",
    help="bytes: this machine reads each picture, Ray carries it | paths: workers open the "
    "paths (every node mounts them alike).",
)
RayPerceptionOpt = typer.Option(
    None,
    "--ray-perception-actors",
    min=1,
    help="Perception actors (default: half the cluster's actor slots).",
)
RayReasoningOpt = typer.Option(
    None, "--ray-reasoning-actors", min=1, help="Reasoning actors (default: the other half)."
)


def ray_settings(
    address: str | None,
    cpus: int | None,
    images: str,
    perception: int | None,
    reasoning: int | None,
):
    """RaySettings from the options, or None when --ray was not given."""
    if address is None:
        return None
    from edge_et.distributed.cluster import RaySettings

    return RaySettings(
        address=address,
        cpus=cpus,
        images=images,
        perception_actors=perception,
        reasoning_actors=reasoning,
    )


def show_pools(pools) -> None:
    err.print("ray: " + "; ".join(pool.describe() for pool in pools), highlight=False, markup=False)


@contextmanager
def batch_runner(settings, threads: int | None) -> Iterator[BatchRunner]:
    """run_batch, or (settings given) a RayRunner on a Ray connected for the with-block."""
    if settings is None:
        yield run_batch
        return
    from edge_et.distributed.batch import RayRunner
    from edge_et.distributed.cluster import connected

    with connected(settings):
        yield RayRunner(settings, threads, on_pools=show_pools)


def ray_without_address(args: list[str]) -> list[str]:
    """`--ray` given without an ADDRESS (last, or before another option) as `--ray=local`:
    typer has no options whose value may be left out."""
    return [
        f"{arg}=local"
        if arg == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-"))
        else arg
        for i, arg in enumerate(args)
    ]


def targets_on_ray(pipeline, pairs, out_file, settings, threads: int | None, steps: dict):
    """`data extract-tuning --ray`: both teacher steps on a Ray connected for the run."""
    from edge_et.distributed.cluster import connected
    from edge_et.distributed.tuning import make_targets_on_ray

    with connected(settings):
        return make_targets_on_ray(
            pipeline, pairs, out_file, settings, threads=threads, on_pools=show_pools, **steps
        )
