"""llama.cpp on a GPU (marker `gpu`): the plan offloads, the models load there, runs complete and
agree with the CPU on what does not depend on floating-point order.

Skipped, with the reason, where llama-cpp-python is a CPU build or sees no GPU (every CI and
developer machine here); benchmarks/gpu_check.sh builds it with CUDA and runs these on a GPU
machine (docs/bench.md, "GPU check").
"""

from __future__ import annotations

import pytest

import edge_et
from edge_et.backends.llama_cpp.gpu import cuda_vram

pytestmark = pytest.mark.gpu

VRAM = cuda_vram()
needs_gpu = pytest.mark.skipif(
    VRAM is None,
    reason="llama-cpp-python here is a CPU build or sees "
    "no GPU: benchmarks/gpu_check.sh runs these on a GPU machine",
)
QUESTION = "What shape is left of the square?\nA. triangle\nB. circle\nC. star\nD. square"


@needs_gpu
def test_the_plan_puts_every_layer_of_the_tiny_models_on_the_gpu(tiny_bundle):
    plan = edge_et.plan_bundle(tiny_bundle, device="cuda", mem_budget="4GB", baseline=0)
    assert plan.decision == "gpu-split", plan.reason
    assert plan.vram is not None and plan.vram.total_bytes > 0
    for role, stage in plan.stages.items():
        assert stage.gpu_layers > 0 and stage.vram_bytes > 0, role


@needs_gpu
def test_a_run_on_the_gpu_feeds_what_the_cpu_run_feeds(tiny_bundle, sample_image):
    options = dict(mode="extract-think", seed=0, think_budget=16, answer_budget=4, temperature=0.0)
    runs = {}
    for device in ("cpu", "cuda"):
        with edge_et.open_pipeline(tiny_bundle, device=device, mem_budget="4GB") as pipeline:
            runs[device] = pipeline.run(sample_image, QUESTION, **options)
    cpu, gpu = runs["cpu"], runs["cuda"]
    for stage in ("extract", "think"):
        # Prompts (image tokens included) are the same tokens; the generated text may differ
        # where random weights give near-ties that another summation order breaks otherwise.
        assert gpu.stages[stage].prompt_tokens == cpu.stages[stage].prompt_tokens, stage
        assert gpu.stages[stage].decode_s > 0 and gpu.stages[stage].generated_tokens > 0
    assert gpu.stages["think"].think_tokens <= 16


@needs_gpu
def test_bench_offloads_with_gpu_layers(tiny_bundle, sample_image):
    from edge_et.bench.run import run_bench

    report = run_bench(
        tiny_bundle,
        images=[sample_image],
        trials=1,
        warmup=0,
        extract_tokens=8,
        think_tokens=8,
        answer_tokens=4,
        budgets=(),
        bandwidth_mib=0,
        gpu_layers=-1,
        direct=False,
    ).to_dict()
    assert report["settings"]["gpu_layers"] == -1
    assert report["stages"]["think"]["decode_tok_s"]["median"] > 0
