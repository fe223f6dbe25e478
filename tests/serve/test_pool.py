"""The model pool (edge_et/serve/pool.py) with the tiny bundle's real llama.cpp models: one run
per model at a time, a model in use is never unloaded (the next borrower waits), least
recently used out, keep-alive, and a model larger than the room refused at once."""

from __future__ import annotations

import threading
import time

import pytest

import edge_et
from edge_et.serve.pool import ModelPool

SETTINGS = {"n_ctx": 512}


@pytest.fixture(scope="module")
def stages(tiny_bundle):
    bundle = edge_et.Bundle.load(tiny_bundle)
    return bundle.perception, bundle.reasoning


def pool_of(room: int, keep_alive_s: float | None = None) -> ModelPool:
    pool = ModelPool(room, keep_alive_s=keep_alive_s)
    for key in ("p", "r"):
        pool.register(key, key, 60, "tiny")
    return pool


def state(pool: ModelPool) -> dict:
    return {m["model"]: m for m in pool.snapshot()}


def borrow_later(pool, key, owner, spec) -> tuple[threading.Thread, list]:
    got: list = []
    thread = threading.Thread(target=lambda: got.append(pool.borrow(key, owner, spec, SETTINGS, 1)))
    thread.start()
    return thread, got


def test_a_model_in_use_is_never_unloaded_the_next_load_waits_then_evicts_it(stages):
    perception, reasoning = stages
    pool, first, second = pool_of(room=100), object(), object()  # one 60-byte model fits, not two
    _, load_s = pool.borrow("p", first, perception, SETTINGS, 1)
    assert load_s is not None and state(pool)["p"]["in_use"]
    thread, got = borrow_later(pool, "r", second, reasoning)
    time.sleep(0.5)
    assert not got and state(pool)["r"]["waiting"] == 1 and state(pool)["p"]["loaded"]
    pool.give_back("p", first)
    thread.join(30)
    assert got and state(pool)["r"]["loaded"] and not state(pool)["p"]["loaded"]
    assert state(pool)["p"]["evictions"] == 1
    pool.close()


def test_a_shared_model_is_lent_to_one_run_at_a_time_and_loaded_once(stages):
    perception, _ = stages
    pool, first, second = pool_of(room=1000), object(), object()
    model, _ = pool.borrow("p", first, perception, SETTINGS, 1)
    thread, got = borrow_later(pool, "p", second, perception)
    time.sleep(0.3)
    assert not got  # the second run waits for the first to give it back
    pool.give_back("p", first)
    thread.join(30)
    assert got and got[0] == (model, None)  # the same loaded model, no second load
    assert state(pool)["p"]["loads"] == 1
    pool.close()


def test_idle_models_are_unloaded_after_the_keep_alive(stages):
    perception, _ = stages
    pool, owner = pool_of(room=1000, keep_alive_s=0.2), object()
    pool.borrow("p", owner, perception, SETTINGS, 1)
    time.sleep(0.5)
    assert state(pool)["p"]["loaded"]  # in use: the keep-alive does not count
    pool.give_back("p", owner)
    deadline = time.monotonic() + 5
    while state(pool)["p"]["loaded"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not state(pool)["p"]["loaded"] and state(pool)["p"]["idle_unloads"] == 1
    pool.close()


def test_a_model_larger_than_the_room_is_refused_at_once(stages):
    perception, _ = stages
    pool = pool_of(room=50)
    with pytest.raises(edge_et.PlanRefused, match="more than the"):
        pool.borrow("p", object(), perception, SETTINGS, 1)
    assert not state(pool)["p"]["loaded"] and state(pool)["p"]["waiting"] == 0
    pool.close()
