"""The residency decisions, on made-up footprints: every branch and its edges.

Footprints here are linear in the context (so shrinking helps) and q8_0 halves the KV
cache, like the real estimates; numbers are in MiB for readability.
"""

import json

import pytest

from edge_et.errors import EdgeEtError
from edge_et.memory.footprint import StageFootprint
from edge_et.memory.probes import VRAM, MiB, parse_size
from edge_et.memory.scheduler import (
    Budget,
    context_ladder,
    gpu_layers_for,
    plan,
    require_runnable,
    resolve_budget,
)

BASE = 50 * MiB


def stage(role, *, weights, kv_per_1k, compute=20, layers=4, output=10, n_params=None):
    """An estimator: (n_ctx, kv_type) -> footprint, KV linear in the context."""

    def estimate(n_ctx, kv_type):
        kv = int(kv_per_1k * MiB * n_ctx / 1024 * (0.53 if kv_type == "q8_0" else 1.0))
        w = weights * MiB
        return StageFootprint(
            role=role,
            n_ctx=n_ctx,
            kv_type=kv_type,
            flash_attn=kv_type != "f16",
            weights_bytes=w,
            kv_bytes=kv,
            compute_bytes=compute * MiB,
            overhead_bytes=5 * MiB,
            layer_weights=(w // layers,) * layers,
            output_weights=output * MiB,
            reserved_compute_bytes=compute * MiB,
            n_params=n_params or int(w * 8 / 4.5),
        )

    return estimate


def both(p_weights=100, r_weights=300, p_kv=10, r_kv=40):
    return {
        "perception": stage("perception", weights=p_weights, kv_per_1k=p_kv),
        "reasoning": stage("reasoning", weights=r_weights, kv_per_1k=r_kv),
    }


CTX = {"perception": 4096, "reasoning": 8192}
FLOORS = {"perception": 2048, "reasoning": 2048}


def totals(estimators, ctx=CTX, kv="f16"):
    return {r: est(ctx[r], kv).total_bytes for r, est in estimators.items()}


def run(budget_bytes, estimators=None, **kwargs):
    estimators = estimators or both()
    return plan(estimators, dict(CTX), dict(FLOORS), Budget(budget_bytes, "test"), BASE, **kwargs)


def test_co_resident_when_both_fit_and_exactly_at_the_budget():
    sizes = totals(both())
    need = BASE + sum(sizes.values())
    exact = run(need)
    assert exact.decision == "co-resident" and exact.peak_bytes == need
    assert "both models fit" in exact.reason
    assert all(fp.kv_type == "f16" for fp in exact.stages.values())


def test_one_byte_short_of_co_resident_swaps_at_f16_instead_of_quantizing_the_kv():
    f16 = BASE + sum(totals(both()).values())
    q8 = BASE + sum(totals(both(), kv="q8_0").values())
    result = run(f16 - 1)
    assert q8 <= f16 - 1  # the old policy would have stayed co-resident with q8_0 caches
    assert result.decision == "swap"
    assert all((fp.kv_type, fp.n_ctx) == ("f16", CTX[role]) for role, fp in result.stages.items())
    assert result.degradations == [] and result.to_dict()["degradations"] == []


def test_swap_degrades_only_the_stage_that_does_not_fit_and_names_why():
    estimators = both()
    room = estimators["reasoning"](8192, "q8_0").total_bytes
    assert estimators["perception"](4096, "f16").total_bytes <= room
    result = run(BASE + room, estimators)
    assert result.stages["perception"].kv_type == "f16"
    assert result.degradations == [
        {
            "stage": "reasoning",
            "what": "kv_cache",
            "from": "f16",
            "to": "q8_0",
            "why": result.degradations[0]["why"],
        }
    ]
    assert "reasoning at f16, n_ctx 8192 would not fit" in result.degradations[0]["why"]
    data = json.loads(json.dumps(result.to_dict()))
    assert data["degradations"][0]["to"] == "q8_0"


def test_shrunk_context_is_listed_with_the_asked_and_chosen_length():
    reasoning = both()["reasoning"]
    result = run(BASE + reasoning(4096, "f16").total_bytes)
    shrunk = [d for d in result.degradations if d["what"] == "n_ctx"]
    assert shrunk == [
        {"stage": "reasoning", "what": "n_ctx", "from": 8192, "to": 4096, "why": shrunk[0]["why"]}
    ]
    assert all(d["what"] != "kv_cache" for d in result.degradations)  # f16 at 4096 fits


def test_swap_when_only_one_model_at_a_time_fits_exactly():
    estimators = both(p_weights=250)  # so that even q8_0 caches do not fit both together
    sizes = totals(estimators)
    larger = BASE + max(sizes.values())
    assert BASE + sum(totals(estimators, kv="q8_0").values()) > larger
    result = run(larger, estimators)
    assert result.decision == "swap"
    assert result.peak_bytes == larger
    assert result.stages["reasoning"].n_ctx == 8192 and result.stages["reasoning"].kv_type == "f16"
    assert "one at a time" in result.reason


def test_swap_uses_q8_kv_before_shrinking_the_context():
    reasoning = both()["reasoning"]
    room = reasoning(8192, "q8_0").total_bytes
    result = run(BASE + room)
    assert result.decision == "swap"
    fp = result.stages["reasoning"]
    assert (fp.n_ctx, fp.kv_type) == (8192, "q8_0")
    assert "reasoning with a q8_0 KV cache" in result.reason


def test_context_shrinks_by_powers_of_two_down_to_the_floor():
    reasoning = both()["reasoning"]
    result = run(BASE + reasoning(4096, "f16").total_bytes)
    fp = result.stages["reasoning"]
    assert result.decision == "swap" and (fp.n_ctx, fp.kv_type) == (4096, "f16")
    assert "asked 8192" in result.reason
    assert result.stages["perception"].n_ctx == 4096  # it fitted unshrunk


def test_refuses_below_the_floor_and_names_numbers_and_what_would_fit():
    reasoning = both()["reasoning"]
    at_floor = reasoning(2048, "q8_0").total_bytes
    result = run(BASE + at_floor - 1)
    assert result.decision == "refuse"
    assert "budget" in result.reason and "MiB" in result.reason
    assert any("a budget of at least" in s for s in result.suggestions)
    assert any("quantized to" in s for s in result.suggestions)  # a smaller quant
    assert any("n_ctx 1024" in s and "floor" in s for s in result.suggestions)
    with pytest.raises(EdgeEtError, match="memory plan: does not fit"):
        require_runnable(result)


def test_refuse_without_any_way_out_still_names_a_budget():
    result = run(1 * MiB)
    assert result.decision == "refuse"
    assert result.suggestions[0].startswith("a budget of at least")
    assert "no smaller quant or shorter context" in result.suggestions[1]
    assert "reasoning at n_ctx 2048" in result.reason
    assert result.to_dict()["decision"] == "refuse"


def test_single_stage_bundle_is_planned_alone():
    only = {"reasoning": both()["reasoning"]}
    result = plan(only, {"reasoning": 8192}, {"reasoning": 2048}, Budget(10**12, "t"), BASE)
    assert result.decision == "co-resident" and list(result.stages) == ["reasoning"]


def test_runnable_plans_pass_through():
    result = run(10**12)
    assert require_runnable(result) is result


# -- GPU -------------------------------------------------------------------------------------


def gpu(free_mib):
    return VRAM(free_mib * MiB, 80_000 * MiB, "Test GPU", "test")


def test_gpu_split_puts_reasoning_layers_first():
    estimators = both()
    r = estimators["reasoning"](8192, "f16")
    # Room for the whole reasoning model (4 layers + output) and nothing of perception.
    need = sum(r.layer_weights) + r.kv_bytes + r.reserved_compute_bytes + r.output_weights
    result = run(10**12, estimators, device="cuda", vram=gpu(512 + need // MiB + 1))
    assert result.decision == "gpu-split"
    assert result.stages["reasoning"].gpu_layers == 5  # n_layer + 1: output too
    assert result.stages["perception"].gpu_layers == 0
    assert result.host_residency == "co-resident"
    assert result.stages["reasoning"].weights_bytes == 0  # all its layers left the host
    assert "reasoning 5/5 layers" in result.reason


def test_zero_vram_offloads_nothing_and_plans_the_cpu():
    result = run(10**12, device="cuda", vram=gpu(0))
    assert result.decision == "co-resident"
    assert all(fp.gpu_layers == 0 for fp in result.stages.values())
    assert "nothing offloaded" in result.reason


def test_cuda_without_a_gpu_build_plans_the_cpu_and_says_so():
    result = run(10**12, device="cuda", vram=None)
    assert result.decision == "co-resident" and "no GPU offload" in result.reason


def test_partial_offload_counts_layers_that_fit():
    fp = both()["reasoning"](8192, "f16")
    per_layer = fp.layer_weights[0] + fp.kv_bytes // 4
    room = fp.reserved_compute_bytes + 2 * per_layer
    assert gpu_layers_for(fp, room) == (2, room)
    assert gpu_layers_for(fp, room - 1)[0] == 1
    assert gpu_layers_for(fp, 0) == (0, 0)


def test_gpu_split_with_host_part_swapped():
    estimators = both()
    r = estimators["reasoning"](8192, "f16")
    one_layer = r.layer_weights[0] + r.kv_bytes // 4 + r.reserved_compute_bytes
    result_vram = gpu(512 + one_layer // MiB + 1)
    host_r = r.total_bytes - r.layer_weights[0] - r.kv_bytes // 4
    result = run(BASE + host_r, estimators, device="cuda", vram=result_vram)
    assert result.decision == "gpu-split" and result.host_residency == "swap"
    assert result.stages["reasoning"].gpu_layers == 1


# -- budget and sizes ------------------------------------------------------------------------


def test_budget_rule_flag_then_bundle_then_80_percent():
    assert resolve_budget(10_000, flag=123, bundle=456) == Budget(123, "--mem-budget")
    assert resolve_budget(10_000, bundle=456).source == "bundle.json memory.budget"
    default = resolve_budget(10_000, available_source="meminfo")
    assert default.bytes == 8_000 and default.source.startswith("80% of")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("6GB", 6 * 10**9),
        ("6GiB", 6 * 2**30),
        ("512MiB", 512 * 2**20),
        ("512M", 512 * 10**6),
        ("1.5 GiB", int(1.5 * 2**30)),
        ("800000000", 800_000_000),
        (4096, 4096),
        ("10kb", 10_000),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "6 apples", "-1GB", "0", "GB", "1e9", "6GBs", True, -5])
def test_parse_size_errors_are_one_line_user_errors(text):
    with pytest.raises(EdgeEtError) as caught:
        parse_size(text)
    assert "\n" not in str(caught.value)


def test_context_ladder():
    assert context_ladder(8192, 2048) == [8192, 4096, 2048]
    assert context_ladder(6000, 1000) == [6000, 4096, 2048, 1024]
    assert context_ladder(4096, 8192) == [4096]  # floor above: never shrink


def test_plan_serialises_to_json_with_every_stage_field():
    data = json.loads(json.dumps(run(10**12).to_dict()))
    assert {"budget_bytes", "budget_source", "decision", "reason"} <= set(data)
    for fields in data["stages"].values():
        assert {
            "weights_bytes",
            "kv_bytes",
            "compute_bytes",
            "mmproj_bytes",
            "total_bytes",
            "n_ctx",
            "kv_type",
            "gpu_layers",
        } <= set(fields)
