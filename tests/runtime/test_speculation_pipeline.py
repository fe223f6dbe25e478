"""`RunOptions.speculative` through the whole pipeline on the tiny bundle: the same greedy
answer with and without drafting, the counts in the JSON, prefix reuse on the second request,
and one-line errors for a bad mode or a draft model that cannot draft."""

import json

import pytest

from edge_et.bundle.manifest import Bundle
from edge_et.errors import InputError
from edge_et.runtime.pipeline import Pipeline, RunOptions

QUESTION = "What shape is left of the square?\nA. triangle\nB. circle\nC. star\nD. square"
GREEDY = {"think_budget": 24, "answer_budget": 8, "temperature": 0.0, "seed": 1}


@pytest.fixture(scope="module")
def pipeline(tiny_bundle):
    bundle = Bundle.load(tiny_bundle)
    bundle.decoding = {"extract": {"max_tokens": 16}}
    with Pipeline(bundle, n_threads=1) as running:
        yield running


def test_lookup_changes_no_greedy_output_and_reports_its_counts(pipeline, sample_image):
    off = pipeline.run(sample_image, QUESTION, RunOptions(speculative="off", **GREEDY))
    on = pipeline.run(sample_image, QUESTION, RunOptions(speculative="lookup", **GREEDY))
    assert on.reasoning == off.reasoning and on.answer == off.answer
    think = json.loads(json.dumps(on.to_dict()))["stages"]["think"]
    assert think["speculative"] == "lookup"
    assert think["drafted_tokens"] >= think["accepted_tokens"] >= 0
    assert off.stages["think"].speculative == "off" and off.stages["think"].drafted_tokens is None
    assert on.stages["think"].think_tokens == off.stages["think"].think_tokens


def test_bad_modes_are_one_line_errors(pipeline, sample_image):
    with pytest.raises(InputError, match="unknown --speculative"):
        pipeline.run(sample_image, QUESTION, RunOptions(speculative="turbo", **GREEDY))
    with pytest.raises(InputError, match="token list differs"):  # tiny Qwen2-VL vs tiny Qwen3
        pipeline.run(sample_image, QUESTION, RunOptions(speculative="draft", **GREEDY))
