"""Swap really bounds memory, on models of >= 100 MB each (benchmarks/swap_memory.py).

A full-size random SmolVLM-256M (Q8_0) and the real Qwen2.5-Coder-0.5B Q4_K_M run in fresh
processes: each stage alone, then extract-think in swap and in co-resident residency.
"""

import pytest

from benchmarks import swap_memory


@pytest.mark.slow
def test_swap_peak_is_bounded_by_the_larger_stage_and_co_resident_holds_both():
    from edge_et.core.cache import cache_root
    from edge_et.core.images import write_sample_image

    cache = cache_root() / "bench" / "swap-100mb"
    bundle = swap_memory.bundle_dir(cache)
    report = swap_memory.measure(bundle, write_sample_image(cache / "sample.png"))
    footprint = report["footprint_bytes"]
    assert min(footprint["perception"], footprint["reasoning"]) > 100 * 2**20
    assert report["runs"]["swap"]["loads"] == 2 and report["runs"]["co-resident"]["loads"] == 2
    assert report["swap_bounded"], report
    assert report["co_resident_at_least_sum"], report
    assert report["swap_peak_bytes"] < 0.75 * report["co_resident_peak_bytes"]
