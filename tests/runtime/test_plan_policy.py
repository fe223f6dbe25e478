"""The planner's policy on the tiny bundle's real footprints: swap before any degradation,
and the plan names what it degraded (in `edge-et plan` lines, its JSON and `run`'s stderr)."""

import json

from edge_et.bundle.manifest import Bundle
from edge_et.cli.run import _print_plan
from edge_et.memory.probes import MiB
from edge_et.runtime.plan import format_plan, plan_bundle

BASELINE = 100 * MiB


def _sizes(bundle):
    roomy = plan_bundle(bundle, mem_budget=10**12, baseline=BASELINE)
    return {role: fp.total_bytes for role, fp in roomy.stages.items()}


def test_budget_between_the_larger_stage_and_both_swaps_at_full_quality(tiny_bundle):
    bundle = Bundle.load(tiny_bundle)
    sizes = _sizes(bundle)
    budget = BASELINE + max(sizes.values())  # one at a time fits exactly; both do not
    result = plan_bundle(bundle, mem_budget=budget, baseline=BASELINE)
    assert result.decision == "swap"
    assert all(fp.kv_type == "f16" for fp in result.stages.values())
    assert result.degradations == []
    assert not any(line.startswith("degraded:") for line in format_plan(result))


def test_a_tighter_budget_degrades_the_larger_stage_and_says_so(tiny_bundle, capsys):
    bundle = Bundle.load(tiny_bundle)
    sizes = _sizes(bundle)
    larger = max(sizes, key=sizes.get)
    result = plan_bundle(bundle, mem_budget=BASELINE + sizes[larger] - 1, baseline=BASELINE)
    assert result.decision == "swap" and result.degradations
    assert {d["stage"] for d in result.degradations} == {larger}
    lines = [line for line in format_plan(result) if line.startswith("degraded:")]
    assert len(lines) == len(result.degradations) and larger in lines[0]
    _print_plan(result, as_json=True)
    printed = json.loads(capsys.readouterr().err)
    assert printed["plan"]["degradations"] == result.degradations
    _print_plan(result, as_json=False)
    assert "degraded: " + larger in capsys.readouterr().err


def test_plan_text_splits_weights_and_repack_as_its_json_does(tiny_bundle):
    from dataclasses import replace

    from edge_et.memory.probes import format_size

    result = plan_bundle(Bundle.load(tiny_bundle), mem_budget=10**12, baseline=BASELINE)
    role, footprint = next(iter(result.stages.items()))
    result.stages[role] = replace(footprint, repack_bytes=3 * MiB)  # what x86/Arm CPUs repack
    line = next(line for line in format_plan(result) if line.startswith(f"{role}:"))
    assert f"weights {format_size(footprint.weights_bytes)}, repack 3.0 MiB, KV" in line
    assert result.stages[role].to_dict()["weights_bytes"] == footprint.weights_bytes
