"""`finish_reason` as OpenAI means it: "length" when a token limit cut the reply's content, in
the whole response and in the stream's final chunk.

The tiny random reasoner never ends by itself, so on the real server every answer is cut (by
the client's `max_tokens` or the short bundle's 3-token answer budget); the "stop" side is
checked on a scripted model whose generation ends, through the same stop reasons.
"""

from __future__ import annotations

import openai
import pytest

import edge_et
from edge_et.backends.base import Sampling
from edge_et.runtime.answer_cue import reason_with_answer_cue
from edge_et.runtime.generation import think_then_answer
from edge_et.serve.completion import finish_reason
from tests.helpers.fakes import (
    ANSWER_B,
    CLOSE,
    CUE,
    EOS,
    NL,
    OPEN,
    SPACE,
    SPACE_B,
    A,
    ScriptedModel,
)
from tests.serve.conftest import QUESTION, chat_body, data_uri


@pytest.fixture(scope="module")
def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=served.key, max_retries=0)


def test_an_answer_cut_by_max_tokens_finishes_with_length_whole_and_streamed(client, sample_image):
    messages = chat_body(data_uri(sample_image), QUESTION)["messages"]
    whole = client.chat.completions.create(
        model="tiny-test", messages=messages, max_tokens=1, seed=2
    )
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage.completion_tokens_details.reasoning_tokens == 6  # the thought, then 1 token
    chunks = list(
        client.chat.completions.create(
            model="tiny-test", messages=messages, max_tokens=1, seed=2, stream=True
        )
    )
    finals = [
        chunk.choices[0].finish_reason
        for chunk in chunks
        if chunk.choices and chunk.choices[0].finish_reason
    ]
    assert finals == ["length"]


def test_a_cached_extraction_keeps_the_stop_reason_it_was_written_with(client, sample_image):
    """`extract` mode replies with the perception text: the short bundle cuts it at 8 tokens,
    and a second request served from the extraction cache says so too."""
    body = {
        "model": "tiny-test",
        "messages": chat_body(data_uri(sample_image))["messages"],
        "extra_body": {"edge_et": {"mode": "extract", "hint": "finish reason probe"}},
    }
    first, cached = (client.chat.completions.create(**body) for _ in range(2))
    assert cached.model_extra["edge_et"]["extraction_cached"] is True
    assert first.choices[0].finish_reason == cached.choices[0].finish_reason == "length"


def scripted(script, n_ctx=10_000) -> ScriptedModel:
    model = ScriptedModel(script, n_ctx=n_ctx)
    model.start(prompt="x")
    return model


def reply_of(stats: edge_et.StageStats) -> edge_et.Result:
    return edge_et.Result(
        mode="extract-think", question="q", reasoning="r", stages={"think": stats}
    )


@pytest.mark.parametrize(
    ("script", "budgets", "finish"),
    [
        # closes its thought, answers, ends: stop
        ({1: OPEN, 2: CLOSE, 3: ANSWER_B}, (50, 10), "stop"),
        # thought forced closed by the budget (the method, not a cut), then the answer ends: stop
        ({1: OPEN, 5: CLOSE, 6: ANSWER_B}, (3, 10), "stop"),
        # answers past the answer budget: length
        ({1: OPEN, 2: CLOSE}, (50, 2), "length"),
    ],
)
def test_a_thinking_models_stop_reason_maps_to_finish_reason(script, budgets, finish):
    def step(n, _context):
        return script.get(n, EOS if finish == "stop" and n > max(script) else SPACE)

    stats = edge_et.StageStats()
    think_then_answer(
        scripted(step),
        sampling=Sampling(),
        think_budget=budgets[0],
        answer_budget=budgets[1],
        stats=stats,
    )
    assert finish_reason(reply_of(stats)) == finish, stats.stop_reason


def test_a_full_context_is_length():
    stats = edge_et.StageStats()
    think_then_answer(
        scripted(lambda n, _: SPACE, n_ctx=8),
        sampling=Sampling(),
        think_budget=50,
        answer_budget=5,
        stats=stats,
    )
    assert stats.stop_reason == "context_full" and finish_reason(reply_of(stats)) == "length"


def test_an_instruct_reasoning_cut_before_its_answer_cue_is_still_length():
    def after_cue(n, context):  # writes until cut, then answers the cue: " B", new line
        if CUE not in context:
            return A
        return [SPACE_B, NL][min(len(context) - context.index(CUE) - 1, 1)]

    cut, whole = edge_et.StageStats(), edge_et.StageStats()
    reason_with_answer_cue(
        scripted(after_cue), sampling=Sampling(), max_tokens=4, answer_budget=4, stats=cut
    )
    reason_with_answer_cue(
        scripted(lambda n, _: [A, NL, ANSWER_B, EOS][min(n, 4) - 1]),
        sampling=Sampling(),
        max_tokens=10,
        answer_budget=4,
        stats=whole,
    )
    assert cut.answer_cued and cut.stop_reason == "max_tokens"
    assert finish_reason(reply_of(cut)) == "length"
    assert whole.stop_reason == "eos" and finish_reason(reply_of(whole)) == "stop"


def test_extract_mode_reads_the_perception_stage_or_the_cached_stop():
    cut = edge_et.StageStats(stop_reason="max_tokens")
    result = edge_et.Result(mode="extract", question="q", stages={"extract": cut})
    assert finish_reason(result) == "length"
    assert finish_reason(edge_et.Result(mode="extract", question="q"), cached_stop="eos") == "stop"
