"""OpenAI's `stop` on the real server with the real client: the reply ends before the first
stop string, whole and streamed alike, with finish_reason "stop"; the thought is never cut."""

from __future__ import annotations

import openai
import pytest

import edge_et
from edge_et.runtime.stop_strings import check_stops, cut_at_stop
from edge_et.serve.jobs import ExtractionCache, Job
from edge_et.serve.jobs import perceive as perceive_job
from tests.serve.conftest import QUESTION, chat_body, data_uri

SEED, BUDGETS = 7, {"think_budget": 12, "answer_budget": 24}


@pytest.fixture(scope="module")
def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=served.key, max_retries=0)


def ask(client, sample_image, **extra):
    return client.chat.completions.create(
        model="tiny-test",
        messages=chat_body(data_uri(sample_image), QUESTION)["messages"],
        seed=SEED,
        extra_body={"edge_et": BUDGETS},
        **extra,
    )


def middle_of(text: str) -> str:
    """Two non-space characters from the middle of `text`, as a stop string."""
    words = [
        i
        for i in range(len(text) - 1)
        if not text[i : i + 2].isspace() and " " not in text[i : i + 2]
    ]
    assert words, f"the reference text {text!r} has no two adjacent non-space characters"
    return text[words[len(words) // 2] : words[len(words) // 2] + 2]


def test_the_reply_ends_before_the_first_stop_string_whole_and_streamed(client, sample_image):
    reference = ask(client, sample_image).choices[0].message
    stop = middle_of(reference.content)
    expected = reference.content[: reference.content.find(stop)].strip()

    whole = ask(client, sample_image, stop=[stop, "never in it \u2603"])
    assert whole.choices[0].message.content == expected
    assert whole.choices[0].finish_reason == "stop"
    assert whole.model_extra["timings"]["stages"]["think"]["stop_reason"] == "stop_string"
    assert (
        whole.choices[0].message.model_extra["reasoning_content"]
        == reference.model_extra["reasoning_content"]
    )

    chunks = list(ask(client, sample_image, stop=stop, stream=True))
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert stop not in streamed and streamed.strip() == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_a_stop_string_inside_the_thought_cuts_nothing(client, sample_image):
    reference = ask(client, sample_image)
    thought = reference.choices[0].message.model_extra["reasoning_content"]
    stop = middle_of(thought)
    if stop in reference.choices[0].message.content:
        pytest.fail(f"pick another seed: {stop!r} is in the reply too")
    stopped = ask(client, sample_image, stop=stop)
    assert stopped.choices[0].message.model_extra["reasoning_content"] == thought
    assert stopped.choices[0].message.content == reference.choices[0].message.content


@pytest.mark.parametrize("stop", ["", [""], ["x"] * 17, "y" * 513])
def test_bad_stop_strings_are_a_400(client, sample_image, stop):
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, sample_image, stop=stop)
    assert "stop" in str(error.value)


class PerceptionOnly:
    """A pipeline whose perception writes `text` (the tiny model's 8-token extraction is
    empty), cut by the stop strings as the runtime cuts it, and counts its runs."""

    def __init__(self, text: str):
        self.text, self.runs = text, 0

    def perceive(self, picture, question, options):
        self.runs += 1
        text, stopped = cut_at_stop(self.text, check_stops(options.stop))
        result = edge_et.Result(mode=options.mode, question=question, extraction=text.strip())
        result.stages["extract"] = edge_et.StageStats(
            stop_reason="stop_string" if stopped else "eos"
        )
        return result


def test_extract_mode_cuts_the_perception_reply_and_keeps_the_cache_whole(sample_image):
    pipeline, cache = PerceptionOnly("two red squares. one blue circle."), ExtractionCache()
    picture = edge_et.decode_image(sample_image)

    def perceive(stop=None) -> Job:
        job = Job(
            picture=picture,
            question="Count the shapes",
            deliver=lambda event: None,
            options=edge_et.RunOptions(mode="extract", hint="the shapes", seed=1, stop=stop),
        )
        perceive_job(pipeline, job, cache, on_piece=lambda stage: None)
        return job

    first = perceive(stop=".")  # cut: not cached
    assert first.result.extraction == "two red squares" and pipeline.runs == 1
    whole = perceive()
    assert whole.result.extraction == pipeline.text and pipeline.runs == 2
    cut = perceive(stop=["blue", "zzz"])  # from the cache, cut as generation would have cut it
    assert pipeline.runs == 2 and cut.extraction_cached and cut.cached_stop == "stop_string"
    assert cut.result.extraction == "two red squares. one"
    assert perceive().result.extraction == pipeline.text  # the cache still holds it all
