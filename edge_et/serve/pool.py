"""The loaded models of a server, shared by every bundle it serves and held within one budget.

Every pipeline (one per bundle and slot) borrows its models from this pool through a
`PoolClient` (the pipeline's `ModelSource`, edge_et/runtime/models.py). What to load, what to
unload and when to wait are the pure policy's (edge_et/memory/residency.py); the pool carries
them out under one lock:

- A model is known by its key (its files' sha256 and the settings it loads with), so two
  bundles that use the same file borrow one loaded model, counted once.
- A model is lent to one run at a time (a llama.cpp context holds one sequence): a second
  borrower waits; this serializes use of a model that bundles share.
- Loading a model that does not fit unloads idle models least recently used first; when the
  models in use leave too little room, the borrower waits (never an overcommit).
- A swap client (a bundle whose two models do not fit together, or `--residency swap`) frees
  its other model before loading one, as a swapping Pipeline does.
- A thread unloads models idle for the keep-alive.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import edge_et
from edge_et.bundle.manifest import StageSpec, sha256_file
from edge_et.errors import ModelLoadError
from edge_et.memory.probes import format_size
from edge_et.memory.residency import Resident, expired, next_expiry, place
from edge_et.runtime.models import load_model

log = logging.getLogger("edge_et.serve")


@dataclass
class Entry:
    """One model the server may load: its size, its state, and its counters."""

    key: str
    label: str
    bytes: int
    bundles: set[str] = field(default_factory=set)
    model: object | None = None
    loading: bool = False
    owner: object | None = None  # the client that borrowed it
    users: int = 0  # nested borrows by `owner`
    last_used: float = 0.0
    waiting: int = 0  # borrowers waiting for it
    loads: int = 0
    evictions: int = 0  # unloaded to make room (least recently used)
    idle_unloads: int = 0  # unloaded after the keep-alive
    swap_unloads: int = 0  # freed by a swap client before it loaded its other model

    @property
    def resident(self) -> bool:
        return self.model is not None or self.loading


class ModelPool:
    """Loaded models within `room` bytes (the budget minus the runtime's baseline)."""

    def __init__(
        self,
        room: int,
        *,
        keep_alive_s: float | None,
        clock: Callable[[], float] = time.monotonic,
        on_idle_unload: Callable[[], None] = lambda: None,
    ):
        self.room = room
        self.keep_alive_s = keep_alive_s
        self._clock = clock
        self._on_idle_unload = on_idle_unload
        self._entries: dict[str, Entry] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._reaper = threading.Thread(target=self._reap, name="edge-et-keep-alive", daemon=True)
        self._reaper.start()

    # -- set-up -------------------------------------------------------------------------------

    def register(self, key: str, label: str, size: int, bundle: str) -> Entry:
        """Make model `key` known (`size` planned bytes; the larger plan wins when bundles
        differ), used by `bundle`."""
        with self._cond:
            entry = self._entries.get(key)
            if entry is None:
                taken = {e.label for e in self._entries.values()}
                unique, n = label, 2
                while unique in taken:
                    unique, n = f"{label}~{n}", n + 1
                entry = self._entries[key] = Entry(key, unique, size)
            entry.bytes = max(entry.bytes, size)
            entry.bundles.add(bundle)
            return entry

    def client(self, keys: dict[str, str], *, swap: bool) -> PoolClient:
        """A pipeline's source: role -> model key of its bundle and slot."""
        return PoolClient(self, keys, swap)

    # -- what the routes and metrics read ---------------------------------------------------

    def snapshot(self) -> list[dict]:
        """Every known model: label, bytes, loaded, in use, waiting, counters, bundles."""
        now = self._clock()
        with self._cond:
            return [
                {
                    "model": e.label,
                    "key": e.key,
                    "bytes": e.bytes,
                    "loaded": e.model is not None,
                    "loading": e.loading,
                    "in_use": e.users > 0,
                    "waiting": e.waiting,
                    "idle_s": round(now - e.last_used, 3)
                    if e.model is not None and not e.users
                    else None,
                    "loads": e.loads,
                    "evictions": e.evictions,
                    "idle_unloads": e.idle_unloads,
                    "swap_unloads": e.swap_unloads,
                    "bundles": sorted(e.bundles),
                }
                for e in self._entries.values()
            ]

    def entry(self, key: str) -> Entry:
        return self._entries[key]

    @property
    def used_bytes(self) -> int:
        with self._cond:
            return sum(e.bytes for e in self._entries.values() if e.resident)

    @property
    def loads(self) -> int:
        return sum(e.loads for e in self._entries.values())

    @property
    def resident_models(self) -> int:
        return sum(1 for e in self._entries.values() if e.model is not None)

    def stop(self) -> None:
        """Borrowers waiting now or later get a ModelLoadError (the server is stopping)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def close(self) -> None:
        """Unload everything (call once no run uses a model)."""
        self.stop()
        with self._cond:
            for entry in self._entries.values():
                self._unload(entry)

    # -- borrowing ----------------------------------------------------------------------------

    def borrow(
        self, key: str, owner: object, spec: StageSpec, settings: dict, n_threads: int | None
    ) -> tuple[object, float | None]:
        """The loaded model `key`, lent to `owner`; loads it first when needed (seconds, else
        None). Waits while another run uses it or while runs hold the room it needs.
        Raises PlanRefused when it could never fit, ModelLoadError when loading fails."""
        with self._cond:
            entry = self._entries[key]
            entry.waiting += 1
            try:
                while True:
                    if self._stopping:
                        raise ModelLoadError("the server is stopping")
                    if entry.resident:
                        if entry.model is not None and (entry.users == 0 or entry.owner is owner):
                            entry.owner, entry.users = owner, entry.users + 1
                            return entry.model, None
                        self._cond.wait()
                        continue
                    decision = place(self._residents(), key, entry.bytes, self.room)
                    if decision.action == "refuse":
                        raise edge_et.PlanRefused(
                            f"model {entry.label}: {decision.reason}",
                            needed_bytes=entry.bytes,
                            budget_bytes=self.room,
                        )
                    if decision.action == "wait":
                        self._cond.wait()
                        continue
                    for other in decision.evict:
                        victim = self._entries[other]
                        log.info(
                            "unloading %s (least recently used) to load %s",
                            victim.label,
                            entry.label,
                        )
                        victim.evictions += 1
                        self._unload(victim)
                    entry.loading, entry.owner, entry.users = True, owner, 1
                    break
            finally:
                entry.waiting -= 1
        try:
            model = load_model(spec, settings, n_threads)  # outside the lock: others go on
        except BaseException:
            with self._cond:
                entry.loading, entry.owner, entry.users = False, None, 0
                self._cond.notify_all()
            raise
        with self._cond:
            entry.model, entry.loading = model, False
            entry.loads += 1
            self._cond.notify_all()
        log.info("loaded %s (%s) in %.2f s", entry.label, format_size(entry.bytes), model.load_s)
        return model, model.load_s

    def give_back(self, key: str, owner: object) -> None:
        """`owner` is done with model `key` for now (it stays loaded until the policy says)."""
        with self._cond:
            entry = self._entries[key]
            if entry.owner is not owner or entry.users == 0:
                return
            entry.users -= 1
            if entry.users == 0:
                entry.owner = None
                entry.last_used = self._clock()
            self._cond.notify_all()

    def free_if_idle(self, key: str) -> None:
        """Unload model `key` now unless a run uses it (a swap client's other model)."""
        with self._cond:
            entry = self._entries[key]
            if entry.model is not None and entry.users == 0:
                entry.swap_unloads += 1
                self._unload(entry)
                self._cond.notify_all()

    # -- inside the lock ----------------------------------------------------------------------

    def _residents(self) -> list[Resident]:
        return [
            Resident(e.key, e.bytes, e.users, e.last_used)
            for e in self._entries.values()
            if e.resident
        ]

    def _unload(self, entry: Entry) -> None:
        if entry.model is not None:
            entry.model.close()
            entry.model = None

    def _reap(self) -> None:
        """Unload models idle for the keep-alive (Ollama's keep_alive)."""
        with self._cond:
            while not self._stopping:
                for key in expired(self._loaded(), self._clock(), self.keep_alive_s):
                    entry = self._entries[key]
                    log.info("unloading %s: idle for the keep-alive", entry.label)
                    entry.idle_unloads += 1
                    self._unload(entry)
                    self._on_idle_unload()
                when = next_expiry(self._loaded(), self.keep_alive_s)
                self._cond.wait(None if when is None else max(0.01, when - self._clock()))

    def _loaded(self) -> list[Resident]:
        return [r for r in self._residents() if self._entries[r.key].model is not None]


class PoolClient:
    """One pipeline's `ModelSource`: borrows its stages' models from the pool."""

    def __init__(self, pool: ModelPool, keys: dict[str, str], swap: bool):
        self._pool, self._keys, self._swap = pool, keys, swap

    def open(self, spec: StageSpec, settings: dict, n_threads: int | None):
        if self._swap:  # one model at a time: the other stage's goes first, when idle
            for role, key in self._keys.items():
                if role != spec.role and key != self._keys[spec.role]:
                    self._pool.free_if_idle(key)
        return self._pool.borrow(self._keys[spec.role], self, spec, settings, n_threads)

    def close(self, spec: StageSpec, model) -> None:
        self._pool.give_back(self._keys[spec.role], self)


_FILE_SHA: dict[tuple, str] = {}


def model_key(root: Path, spec: StageSpec, load: dict, slot: int) -> tuple[str, str]:
    """(key, label) of `spec`'s model (a stage of the bundle at `root`) loaded with `load`
    (context, KV type, ...) in `slot`: the files' sha256 (from bundle.json, else read once per
    file) make two bundles' copies of one file one model."""
    hashes = [_sha256(root, spec, name) for name in spec.files()]
    identity = json.dumps([spec.backend, hashes, sorted(load.items()), slot], default=str)
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    label = f"{Path(spec.model).name}@{hashes[0][:8]}" + (f"#slot{slot}" if slot else "")
    return key, label


def _sha256(root: Path, spec: StageSpec, name: str) -> str:
    if spec.sha256.get(name):
        return spec.sha256[name]
    path = root / name
    stat = path.stat()
    seen = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if seen not in _FILE_SHA:
        _FILE_SHA[seen] = sha256_file(path)
    return _FILE_SHA[seen]
