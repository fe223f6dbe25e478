"""One Pipeline shared by threads: calls run one at a time and give the sequential results.

Before, four threads calling `run` on one pipeline corrupted llama.cpp's context: `double free
or corruption` and exit 134, or garbage token bytes (UnicodeDecodeError) in one thread.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from edge_et import Finished, PipelineBusy
from edge_et.bundle.manifest import Bundle
from edge_et.runtime.pipeline import Pipeline, RunOptions
from tests.helpers.fresh_run import outcome

pytestmark = pytest.mark.slow
DECODING = {
    "extract": {"max_tokens": 24},
    "caption": {"max_tokens": 24},
    "direct": {"max_tokens": 8},
    "think": {"budget": 24, "answer_budget": 6},
}
QUESTIONS = [
    "What is left of the square?\nA. circle\nB. star",
    "How many shapes are there?\nA. 1\nB. 2",
]
REQUESTS = [
    (mode, question)
    for mode in ("extract", "extract-think", "caption-think", "direct")
    for question in QUESTIONS
]


def pipeline_of(tiny_bundle) -> Pipeline:
    bundle = Bundle.load(tiny_bundle)
    bundle.decoding = DECODING
    return Pipeline(bundle, n_threads=1)


def ask(pipeline: Pipeline, image, mode: str, question: str, *, streamed: bool) -> dict:
    options = RunOptions(mode=mode, seed=11)
    if not streamed:
        return outcome(pipeline.run(image, question, options))
    finished = [e for e in pipeline.stream(image, question, options) if isinstance(e, Finished)]
    return outcome(finished[0].result)


def test_eight_threads_on_one_pipeline_give_the_sequential_results(tiny_bundle, sample_image):
    with pipeline_of(tiny_bundle) as pipeline:
        sequential = {r: ask(pipeline, sample_image, *r, streamed=False) for r in REQUESTS}
    jobs = [(r, i % 2 == 1) for i, r in enumerate(REQUESTS * 3)]  # run and stream, mixed modes
    with pipeline_of(tiny_bundle) as pipeline, ThreadPoolExecutor(8) as pool:
        futures = [(r, pool.submit(ask, pipeline, sample_image, *r, streamed=s)) for r, s in jobs]
        threaded = [(r, future.result(timeout=600)) for r, future in futures]
    assert all(got == sequential[r] for r, got in threaded)
    assert len({str(v) for v in sequential.values()}) >= 3  # not one outcome for every request


def test_a_caller_that_will_not_wait_is_refused_while_another_thread_runs(
    tiny_bundle, sample_image
):
    with pipeline_of(tiny_bundle) as pipeline:
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with pipeline.model_lock.held():
                holding.set()
                release.wait(60)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert holding.wait(60)
            with pytest.raises(PipelineBusy, match="another request"):
                pipeline.run(sample_image, QUESTIONS[0], mode="extract", seed=1, wait=False)
            with pytest.raises(PipelineBusy):
                list(
                    pipeline.stream(sample_image, QUESTIONS[0], mode="extract", seed=1, wait=False)
                )
        finally:
            release.set()
            holder.join()
        free = pipeline.run(sample_image, QUESTIONS[0], mode="extract", seed=1, wait=False)
        assert free.stages["extract"].generated_tokens > 0
