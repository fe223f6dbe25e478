"""Conversations and structured replies with the real `openai` client against the real server.

The tiny random bundle writes noise, so the tests check what reaches the reasoner's prompt
(`edge_et.return_prompt`), what the caches did, and that constrained replies parse, never the
meaning of a text.
"""

from __future__ import annotations

import io
import json
import random

import jsonschema
import openai
import pytest
from PIL import Image

from tests.helpers.short_bundle import short_bundle
from tests.serve.conftest import data_uri, start_server


@pytest.fixture(scope="module")
def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=served.key, max_retries=0)


def fresh_picture(tmp_path, colour) -> str:
    """A picture no other test sent (its embeddings are not cached yet)."""
    image = Image.new("RGB", (96, 64), (255, 255, 255))
    image.paste(colour, (10, 10, 50, 50))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    path = tmp_path / "fresh.png"
    path.write_bytes(buffer.getvalue())
    return data_uri(path)


def test_a_text_only_turn_is_answered_by_the_reasoner(client):
    reply = client.chat.completions.create(
        model="tiny-test",
        seed=1,
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is two plus two?"},
        ],
        extra_body={"edge_et": {"return_prompt": True}},
    )
    extension = reply.model_extra["edge_et"]
    assert extension["mode"] == "chat" and extension["image_sha256"] is None
    assert reply.choices[0].message.model_extra["extraction"] is None
    assert isinstance(reply.choices[0].message.content, str)
    assert reply.usage.prompt_tokens > 0 and "extract" not in reply.model_extra["timings"]["stages"]
    prompt = extension["conversation"]["prompt"]  # the system text reaches the reasoner
    assert "Answer briefly." in prompt and "What is two plus two?" in prompt
    assert "Description:" not in prompt  # no picture, no paper prompt


def test_three_turns_about_one_picture_encode_it_once_and_keep_the_history(
    served, client, tmp_path
):
    picture = fresh_picture(tmp_path, (20, 180, 40))
    misses = served.metric("edge_et_cache_total", cache="embedding", result="miss")
    questions = [
        "What color is the square?",
        "Where is it in the picture?",
        "Is it bigger than the margin?",
    ]
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": picture}},
                {"type": "text", "text": questions[0]},
            ],
        }
    ]
    replies = []
    for turn, question in enumerate(questions):
        if turn:
            messages.append({"role": "user", "content": question})
        reply = client.chat.completions.create(
            model="tiny-test",
            seed=7,
            messages=messages,
            extra_body={"edge_et": {"return_prompt": True}},
        )
        replies.append(reply)
        # the client keeps the answer; the extraction is left out: the server makes it again
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
    cached = [
        reply.model_extra["timings"]["stages"]["extract"]["image_cached"] for reply in replies
    ]
    assert cached == [False, True, True]
    assert served.metric("edge_et_cache_total", cache="embedding", result="miss") == misses + 1
    third = replies[2].model_extra["edge_et"]["conversation"]
    assert third["turns"] == 2 and third["dropped"] == 0
    first_extraction = replies[0].choices[0].message.model_extra["extraction"]
    first_answer = replies[0].choices[0].message.content
    prompt = third["prompt"]
    # the first turn's facts: its question, its extraction and the reasoner's own answer
    assert "Question: " + questions[0] in prompt and "Question: " + questions[1] in prompt
    assert "Description: " + first_extraction + "\nQuestion: " + questions[0] in prompt
    assert first_answer.strip() and first_answer in prompt
    assert replies[2].usage.prompt_tokens > replies[0].usage.prompt_tokens
    assert (
        prompt.count("You are an excellent text-based reasoning expert.") == 1
    )  # the current turn's
    assert replies[0].model_extra["edge_et"]["conversation"] is None  # one turn: the paper's prompt


def test_an_echoed_extraction_is_used_as_it_is(client, sample_image):
    picture = data_uri(sample_image)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": picture}},
                {"type": "text", "text": "What is there?"},
            ],
        },
        {
            "role": "assistant",
            "content": "A circle.",
            "extraction": "A GREEN CIRCLE ON WHITE.",
            "reasoning_content": "(echoed, not used)",
            "refusal": None,
        },
        {"role": "user", "content": "And its color?"},
    ]
    reply = client.chat.completions.create(
        model="tiny-test",
        seed=2,
        messages=messages,
        extra_body={"edge_et": {"return_prompt": True}},
    )
    prompt = reply.model_extra["edge_et"]["conversation"]["prompt"]
    assert "Description: A GREEN CIRCLE ON WHITE.\nQuestion: What is there?" in prompt
    assert "A circle." in prompt and "(echoed, not used)" not in prompt


@pytest.fixture(scope="module")
def small_context(tiny_bundle, tmp_path_factory):
    """A server whose reasoner has a 1,024-token context: a short conversation overflows it."""
    folder = tmp_path_factory.mktemp("small-context")
    bundle = short_bundle(tiny_bundle, folder)
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["reasoning"]["n_ctx"] = 1024
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    with start_server(bundle, folder, key=None) as server:
        yield openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)


def test_the_oldest_turns_are_dropped_first_and_the_reply_says_so(small_context, sample_image):
    client = small_context
    picture = data_uri(sample_image)
    long_answer = "word " * 100  # each earlier turn over 100 tokens; the context is 1,024
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": picture}},
                {"type": "text", "text": "first question"},
            ],
        }
    ]
    for index in range(15):
        messages += [
            {
                "role": "assistant",
                "content": f"answer {index} " + long_answer,
                "extraction": f"extraction {index}",
            },
            {"role": "user", "content": f"question {index + 1}"},
        ]
    reply = client.chat.completions.create(
        model="tiny-test",
        seed=2,
        messages=messages,
        extra_body={"edge_et": {"return_prompt": True}},
    )
    conversation = reply.model_extra["edge_et"]["conversation"]
    assert conversation["dropped"] > 0 and conversation["turns"] + conversation["dropped"] == 15
    assert "answer 14 " in conversation["prompt"] and "answer 0 " not in conversation["prompt"]


def schemas(count: int, rng: random.Random) -> list[dict]:
    """`count` varied JSON schemas whose every value is bounded (a random model under a grammar
    then always closes its JSON within the answer budget)."""
    leaves = [
        lambda: {"type": "boolean"},
        lambda: {"type": "integer"},
        # ASCII by pattern: llama.cpp's grammar counts code points of byte sequences that
        # Python's strict UTF-8 decoder rejects (overlong, surrogates), which random models
        # emit, so a maxLength on free text can read longer here than the grammar allowed
        lambda: {"type": "string", "pattern": f"^[A-Za-z ]{{1,{rng.randint(1, 12)}}}$"},
        lambda: {"enum": rng.sample(["red", "green", "blue", "yellow", "none"], rng.randint(1, 4))},
        lambda: {"type": "string", "enum": ["A", "B", "C", "D"]},
        lambda: {"type": "array", "items": {"type": "integer"}, "maxItems": rng.randint(1, 3)},
    ]
    out = []
    for _ in range(count):
        names = rng.sample(
            ["answer", "color", "count", "present", "label", "where", "why"], rng.randint(1, 4)
        )
        properties = {name: rng.choice(leaves)() for name in names}
        if rng.random() < 0.3:
            properties["box"] = {
                "type": "object",
                "additionalProperties": False,
                "required": ["x", "y"],
                "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
            }
        out.append(
            {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            }
        )
    return out


def test_json_schema_replies_parse_against_the_schema_on_50_requests(client, sample_image):
    rng = random.Random(27)
    picture = data_uri(sample_image)
    for index, schema in enumerate(schemas(50, rng)):
        if index % 5 == 4:  # a text-only turn is constrained the same way
            messages = [{"role": "user", "content": f"Describe request {index} as JSON."}]
        else:
            messages = [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": picture}},
                        {"type": "text", "text": f"Fill the fields ({index})."},
                    ],
                }
            ]
        reply = client.chat.completions.create(
            model="tiny-test",
            seed=rng.randrange(2**31),
            temperature=rng.choice([0.0, 0.7, 1.0]),
            messages=messages,
            max_tokens=600,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": f"s{index}", "schema": schema},
            },
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "stop", (schema, choice.message.content)
        jsonschema.validate(json.loads(choice.message.content), schema)


def test_json_object_streams_json_after_a_free_thought(client, sample_image):
    chunks = list(
        client.chat.completions.create(
            model="tiny-test",
            seed=4,
            stream=True,
            max_tokens=200,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": data_uri(sample_image)}},
                        {"type": "text", "text": "As JSON, please."},
                    ],
                }
            ],
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "schema": {
                        "type": "object",
                        "properties": {"ok": {"type": "boolean"}},
                        "required": ["ok"],
                    },
                },
            },
        )
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    thought = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for c in chunks
        if c.choices
    )
    assert json.loads(content)["ok"] in (True, False)
    assert thought and not thought.lstrip().startswith("{")  # the thought was not constrained


def test_a_schema_the_grammar_cannot_take_is_a_400(client, sample_image):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="tiny-test",
            messages=[{"role": "user", "content": "x"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "bogus"}},
            },
        )
    assert refused.value.body["param"] == "response_format"
    assert refused.value.body["code"] == "unsupported_response_format"


def test_image_detail_low_is_one_small_look(client, tmp_path):
    big = Image.new("RGB", (1024, 768), (250, 250, 250))
    big.paste((200, 20, 20), (100, 100, 600, 500))
    path = tmp_path / "big.png"
    big.save(path)
    tokens = {}
    for detail in ("high", "low"):
        reply = client.chat.completions.create(
            model="tiny-test",
            seed=1,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": data_uri(path), "detail": detail},
                        },
                        {"type": "text", "text": "What is there?"},
                    ],
                }
            ],
            extra_body={"edge_et": {"mode": "extract"}},
        )
        assert reply.model_extra["edge_et"]["image_detail"] == detail
        tokens[detail] = reply.model_extra["timings"]["stages"]["extract"]["prompt_tokens"]
    assert tokens["low"] * 3 < tokens["high"], tokens  # Qwen2-VL: a small pixel cap


def test_a_think_budget_of_0_puts_the_whole_reply_in_content(client, sample_image):
    # at budget 0 the template writes an empty thought into the prompt: the text is the answer
    reply = client.chat.completions.create(
        model="tiny-test",
        seed=3,
        max_tokens=40,
        messages=[{"role": "user", "content": "Say A."}],
        extra_body={"edge_et": {"think_budget": 0}},
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "a",
                "schema": {
                    "type": "object",
                    "properties": {"a": {"type": "boolean"}},
                    "required": ["a"],
                },
            },
        },
    )
    assert json.loads(reply.choices[0].message.content)["a"] in (True, False)
    assert not reply.choices[0].message.model_extra["reasoning_content"]
