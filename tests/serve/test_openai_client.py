"""The real `openai` client against the real server: sync and async, whole and streamed.

The tiny random bundle writes noise, so the tests check the protocol (fields, order, ids,
usage, caches), never the text's meaning.
"""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests.serve.conftest import QUESTION, chat_body, data_uri


@pytest.fixture(scope="module")
def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=served.key, max_retries=0)


def messages(image_url: str, question: str = QUESTION) -> list:
    return chat_body(image_url, question)["messages"]


def test_a_whole_completion_has_extraction_reasoning_answer_usage_and_timings(client, sample_image):
    reply = client.chat.completions.create(
        model="tiny-test",
        messages=messages(data_uri(sample_image)),
        seed=3,
        extra_body={"edge_et": {"hint": "the shapes"}},
    )
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    # the short bundle's 3-token answer budget cuts every answer of the random reasoner
    assert choice.finish_reason == "length" and choice.message.role == "assistant"
    extra = choice.message.model_extra
    assert set(extra) >= {"extraction", "reasoning_content", "reasoning"}
    assert extra["reasoning_content"] == extra["reasoning"]
    assert "</think>" not in choice.message.content and "</think>" not in extra["reasoning_content"]
    usage = reply.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    assert usage.completion_tokens_details.reasoning_tokens == 6  # the short bundle's think budget
    body = reply.model_extra
    assert body["edge_et"]["hint"] == "the shapes" and body["edge_et"]["hint_source"] == "flag"
    assert body["edge_et"]["seed"] == 3 and body["edge_et"]["mode"] == "extract-think"
    stages = body["timings"]["stages"]
    assert stages["extract"]["image_encode_s"] is not None and stages["think"]["decode_tok_s"] > 0


def test_the_same_seed_gives_the_same_completion(client, sample_image):
    runs = [
        client.chat.completions.create(
            model="tiny-test", messages=messages(data_uri(sample_image)), seed=11, temperature=0.7
        )
        for _ in range(2)
    ]
    assert runs[0].choices[0].message.content == runs[1].choices[0].message.content
    assert runs[0].model_extra["edge_et"]["answer"] == runs[1].model_extra["edge_et"]["answer"]


def test_a_stream_has_the_openai_shape(client, sample_image):
    chunks = list(
        client.chat.completions.create(
            model="tiny-test",
            messages=messages(data_uri(sample_image)),
            stream=True,
            seed=5,
            stream_options={"include_usage": True},
            extra_body={"edge_et": {"hint": "a stream hint"}},
        )
    )
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    kinds = [
        next(
            k
            for k in ("extraction", "reasoning_content", "content", "none")
            if k == "none" or (getattr(d, k, None) or (d.model_extra or {}).get(k))
        )
        for d in deltas[1:]
    ]
    order = [k for i, k in enumerate(kinds) if k != "none" and (i == 0 or k != kinds[i - 1])]
    rank = {"extraction": 0, "reasoning_content": 1, "content": 2}
    assert "reasoning_content" in order and order == sorted(order, key=rank.get), order
    finals = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "length"
    assert finals[0].model_extra["edge_et"]["answer"] is not None
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    thought = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    whole = client.chat.completions.create(
        model="tiny-test",
        messages=messages(data_uri(sample_image)),
        seed=5,
        extra_body={"edge_et": {"hint": "a stream hint"}},
    )
    assert thought.strip() == whole.choices[0].message.model_extra["reasoning_content"]
    answer = "".join(d.content or "" for d in deltas)
    assert answer.strip() == whole.choices[0].message.content


def test_the_async_client_streams_and_answers_concurrently(served, sample_image):
    spans = {}  # request -> (sent, finished) on the event loop's clock

    async def timed(name, request):
        sent = asyncio.get_running_loop().time()
        reply = await request()
        spans[name] = (sent, asyncio.get_running_loop().time())
        return reply

    async def main():
        async with openai.AsyncOpenAI(
            base_url=served.url + "/v1", api_key=served.key, max_retries=0
        ) as client:

            async def whole():
                return await client.chat.completions.create(
                    model="tiny-test", messages=messages(data_uri(sample_image))
                )

            async def streamed():
                stream = await client.chat.completions.create(
                    model="tiny-test",
                    messages=messages(data_uri(sample_image), "How many shapes?"),
                    stream=True,
                )
                return [chunk async for chunk in stream]

            return await asyncio.gather(timed("whole", whole), timed("stream", streamed))

    whole, pieces = asyncio.run(main())
    # Both requests were in flight at once: each was sent before the other finished.
    assert spans["whole"][0] < spans["stream"][1] and spans["stream"][0] < spans["whole"][1]
    assert whole.choices[0].finish_reason == "length"  # the short bundle's answer budget
    assert pieces[-1].choices[0].finish_reason == "length"
    assert len({piece.id for piece in pieces}) == 1 and pieces[0].id != whole.id


def test_a_second_question_on_the_same_image_skips_the_encode_and_the_same_hint_the_extraction(
    client, sample_image
):
    image = messages(data_uri(sample_image))
    first = client.chat.completions.create(
        model="tiny-test",
        messages=image,
        seed=1,
        extra_body={"edge_et": {"hint": "cache probe one"}},
    )
    other_hint = client.chat.completions.create(
        model="tiny-test",
        messages=image,
        seed=1,
        extra_body={"edge_et": {"hint": "cache probe two"}},
    )
    same_hint = client.chat.completions.create(
        model="tiny-test",
        messages=image,
        seed=1,
        extra_body={"edge_et": {"hint": "cache probe one"}},
    )
    assert other_hint.model_extra["timings"]["stages"]["extract"]["image_cached"] is True
    assert other_hint.model_extra["edge_et"]["extraction_cached"] is False
    assert same_hint.model_extra["edge_et"]["extraction_cached"] is True
    assert "extract" not in same_hint.model_extra["timings"]["stages"]
    assert (
        same_hint.choices[0].message.model_extra["extraction"]
        == first.choices[0].message.model_extra["extraction"]
    )
    assert same_hint.choices[0].message.content == first.choices[0].message.content


def test_a_follow_up_turn_without_an_image_asks_about_the_earlier_one(client, sample_image):
    turns = messages(data_uri(sample_image)) + [
        {"role": "assistant", "content": "B"},
        {"role": "user", "content": "And what color is the square?\nA. purple\nB. red"},
    ]
    reply = client.chat.completions.create(model="tiny-test", messages=turns)
    assert reply.model_extra["edge_et"]["image_cached"] is True
    assert reply.model_extra["edge_et"]["hint"] == "the colors of the objects in the image"


@pytest.mark.parametrize("mode", ["extract", "direct", "caption-think"])
def test_every_mode_answers(client, sample_image, mode):
    reply = client.chat.completions.create(
        model="tiny-test",
        messages=messages(data_uri(sample_image)),
        extra_body={"edge_et": {"mode": mode}},
    )
    message = reply.choices[0].message
    assert reply.model_extra["edge_et"]["mode"] == mode
    # A stage whose output an earlier test's request cached has no timings of its own.
    stages = set(reply.model_extra["timings"]["stages"])
    if mode in ("extract", "direct"):
        assert message.content == message.model_extra["extraction"]
        assert message.model_extra["reasoning_content"] is None
        assert stages <= {mode} and "think" not in stages
    else:  # a generic caption, no hint, then the reasoner
        assert "think" in stages and stages <= {"caption", "think"}
        assert reply.model_extra["edge_et"]["hint"] is None
        assert message.model_extra["reasoning_content"] is not None


def test_models_lists_the_bundle_with_its_stages(client, served):
    listed = client.models.list().data
    assert len(listed) == 1 and listed[0].id == "tiny-test"
    stages = listed[0].model_extra["edge_et"]["stages"]
    assert stages["reasoning"]["thinking"] is True and stages["perception"]["arch"]
    assert httpx.get(served.url + "/openapi.json").json()["paths"]["/v1/chat/completions"]
