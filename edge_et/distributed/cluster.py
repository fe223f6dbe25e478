"""Connecting to Ray (a local instance started for the run, or a cluster's address) and what
the cluster holds; Ray's own failures turned into one-line EdgeEtError kinds."""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from edge_et import errors
from edge_et.errors import EdgeEtError, InputError, MissingExtra, ModelError

IMAGE_TRANSPORTS = ("bytes", "paths")
LOCAL = "local"  # `--ray` without an address


@dataclass
class RaySettings:
    """What `--ray` and the `--ray-*` flags ask for.

    address: LOCAL (a Ray started for this run, stopped after it) or a cluster's address
        (`HOST:PORT` of its head, `auto`, `ray://HOST:PORT`).
    cpus: the CPUs a local Ray may use (default: every core of this machine).
    images: "bytes" (this machine reads each picture and Ray's object store carries it) or
        "paths" (each worker opens the path itself: a filesystem every node mounts alike).
    perception_actors, reasoning_actors: actors per stage (default: from the cluster's CPUs).
    """

    address: str = LOCAL
    cpus: int | None = None
    images: str = "bytes"
    perception_actors: int | None = None
    reasoning_actors: int | None = None

    def __post_init__(self) -> None:
        if self.images not in IMAGE_TRANSPORTS:
            raise InputError(
                f"unknown --ray-images {self.images!r}; choose one of: "
                f"{', '.join(IMAGE_TRANSPORTS)}"
            )
        if self.cpus is not None and self.address != LOCAL:
            raise InputError(
                "--ray-cpus sizes a local Ray; a cluster has the CPUs its nodes were started with"
            )
        for name in ("cpus", "perception_actors", "reasoning_actors"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"--ray-{name.replace('_', '-')} must be at least 1, got {value}")


def require_ray():
    """The `ray` module, or MissingExtra naming the extra that brings it."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data: pyarrow and pandas come with ray[data])
    except ImportError as exc:
        raise MissingExtra(
            f"--ray needs {exc.name}: pip install 'edge-et[ray]'", extra="ray"
        ) from None
    for name in ("ray", "ray.data"):  # Ray's notes and deprecations are not the user's business
        logging.getLogger(name).setLevel(logging.ERROR)
    return ray


@contextmanager
def connected(settings: RaySettings) -> Iterator[object]:
    """Ray, initialised for this run (a local instance, or connected to `settings.address`);
    disconnected (a local instance stopped) afterwards. A Ray the caller initialised already is
    used as it is and left running."""
    ray = require_ray()
    # Ray Data keeps every actor's constructor arguments in the object store, and Ray's core
    # logs a warning about that for each pool; its failures still arrive as exceptions.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    if ray.is_initialized():
        yield ray
        return
    try:
        if settings.address == LOCAL:
            ray.init(
                num_cpus=settings.cpus or os.cpu_count(),
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        else:
            ray.init(address=settings.address, log_to_driver=False, logging_level=logging.ERROR)
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError
        where = (
            "start a local Ray"
            if settings.address == LOCAL
            else f"connect to the Ray cluster at {settings.address!r}"
        )
        raise InputError(f"cannot {where}: {first_line(exc)}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class Node:
    """One alive node: its CPUs and the `memory` resource Ray schedules actors by."""

    cpus: float
    memory: float


def alive_nodes() -> list[Node]:
    ray = require_ray()
    return [
        Node(cpus=node["Resources"].get("CPU", 0.0), memory=node["Resources"].get("memory", 0.0))
        for node in ray.nodes()
        if node.get("Alive")
    ]


def actor_slots(nodes: list[Node], threads: int, memory: int) -> int:
    """How many actors of `threads` CPUs and `memory` bytes the nodes hold at once."""
    return sum(
        min(
            math.floor(node.cpus / threads + 1e-9),
            math.floor(node.memory / memory) if memory else math.inf,
        )
        for node in nodes
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def ray_failure(exc: BaseException) -> EdgeEtError:
    """The EdgeEtError behind a failure Ray reports from a worker (a model that would not load,
    a bundle a node cannot read), else a ModelError naming Ray's own first line.

    A worker's exception reaches the driver as an object (RayTaskError.cause) or, when it
    killed an actor's constructor, only as the text of its traceback, whose last
    `edge_et.errors.Kind: message` line is the one-line message.
    """
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        cause = getattr(exc, "cause", None)
        exc = cause if isinstance(cause, BaseException) else (exc.__cause__ or exc.__context__)
    for link in chain:
        if isinstance(link, EdgeEtError) and not hasattr(link, "cause"):
            return link
    for link in chain:
        found = WORKER_ERROR.findall(str(link))
        if found:
            kind, message = found[-1]
            error = getattr(errors, kind, None)
            is_kind = isinstance(error, type) and issubclass(error, EdgeEtError)
            return (error if is_kind else EdgeEtError)(message.strip())
    return ModelError(f"the Ray run failed: {first_line(chain[-1] if chain else exc)}")


WORKER_ERROR = re.compile(r"^edge_et\.(?:[\w.]+\.)?(\w+): (.+)$", re.MULTILINE)
