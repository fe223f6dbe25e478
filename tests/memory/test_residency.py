"""The many-bundle server's load/unload policy (edge_et/memory/residency.py), with made-up
sizes and a made-up clock: no model, no server."""

from edge_et.memory.residency import Resident, expired, next_expiry, place, residency

MB = 1 << 20


def test_a_loaded_model_is_used_as_it_is():
    assert place([Resident("a", 10 * MB, users=1)], "a", 10 * MB, 20 * MB).action == "ready"


def test_a_model_that_fits_in_what_is_free_loads_without_unloading_anything():
    decision = place([Resident("a", 10 * MB)], "b", 10 * MB, 20 * MB)
    assert decision.action == "load" and decision.evict == ()


def test_idle_models_are_unloaded_least_recently_used_first_and_only_as_many_as_needed():
    loaded = [
        Resident("new", 10 * MB, last_used=30),
        Resident("old", 10 * MB, last_used=10),
        Resident("mid", 10 * MB, last_used=20),
    ]
    assert place(loaded, "x", 10 * MB, 30 * MB).evict == ("old",)
    assert place(loaded, "x", 20 * MB, 30 * MB).evict == ("old", "mid")


def test_a_model_in_use_is_never_unloaded_the_caller_waits_instead():
    loaded = [
        Resident("busy", 10 * MB, users=1, last_used=0),
        Resident("idle", 10 * MB, last_used=5),
    ]
    assert place(loaded, "x", 10 * MB, 20 * MB).evict == ("idle",)  # the older busy one stays
    decision = place(loaded, "x", 20 * MB, 20 * MB)
    assert decision.action == "wait" and decision.evict == ()
    assert "10.0 MiB" in decision.reason


def test_a_model_larger_than_the_room_is_refused_with_the_figures():
    decision = place([], "huge", 30 * MB, 20 * MB)
    assert decision.action == "refuse"
    assert "30.0 MiB" in decision.reason and "20.0 MiB" in decision.reason


def test_keep_alive_unloads_idle_models_only():
    loaded = [
        Resident("idle", MB, last_used=0),
        Resident("busy", MB, users=1, last_used=0),
        Resident("recent", MB, last_used=9),
    ]
    assert expired(loaded, now=10, keep_alive_s=5) == ["idle"]
    assert expired(loaded, now=10, keep_alive_s=None) == []
    assert next_expiry(loaded, keep_alive_s=5) == 5
    assert next_expiry(loaded, keep_alive_s=None) is None


def test_a_request_is_co_resident_when_its_models_fit_together_else_swapped_else_refused():
    stages = {"perception": ("p", 10 * MB), "reasoning": ("r", 10 * MB)}
    assert residency(stages, 20 * MB).decision == "co-resident"
    assert residency(stages, 15 * MB).decision == "swap"
    refused = residency(stages, 5 * MB)
    assert refused.decision == "refuse" and refused.need_bytes == 10 * MB
    assert "10.0 MiB" in refused.reason and "5.0 MiB" in refused.reason


def test_one_file_used_by_two_stages_is_counted_once():
    same = {"perception": ("m", 10 * MB), "reasoning": ("m", 10 * MB)}
    decided = residency(same, 10 * MB)
    assert decided.decision == "co-resident" and decided.need_bytes == 10 * MB
