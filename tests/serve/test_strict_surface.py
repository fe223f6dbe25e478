"""The strict OpenAI surface, limits that say what they mean, and DNS rebinding protection,
against real servers: every field is honoured or a 400 naming it, an unknown model is a 404,
`--max-queue 0` still serves an idle slot, `max_tokens` counts once, a forged Host or Origin is
refused."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

import edge_et
from tests.helpers.short_bundle import short_bundle
from tests.serve.conftest import chat_body, data_uri, start_server

OPEN_HOST = "good.example"


@pytest.fixture(scope="module")
def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=served.key, max_retries=0)


@pytest.fixture(scope="module")
def keyless_bundle(tiny_bundle, tmp_path_factory):
    """The short tiny bundle with the reasoner's default context (8,192 tokens)."""
    return short_bundle(tiny_bundle, tmp_path_factory.mktemp("keyless-bundle"))


@pytest.fixture(scope="module")
def keyless(keyless_bundle, tmp_path_factory):
    """A server without an API key (so the Host check applies), no waiting room, one extra
    allowed host name and one CORS origin."""
    folder = tmp_path_factory.mktemp("keyless")
    with start_server(
        keyless_bundle,
        folder,
        "--max-queue",
        "0",
        "--allowed-hosts",
        OPEN_HOST,
        "--cors-origin",
        "http://app.example",
        key=None,
    ) as server:
        yield server


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ("tool_choice", "required"),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("top_p", 0.5),
        ("frequency_penalty", 0.4),
        ("presence_penalty", -1),
        ("logit_bias", {"42": 5}),
        ("reasoning_effort", "high"),
        ("modalities", ["text", "audio"]),
        ("service_tier", "flex"),
        ("not_an_openai_field", 1),
    ],
)
def test_a_field_the_server_does_not_honour_is_a_400_naming_it(client, sample_image, field, value):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="tiny-test",
            messages=chat_body(data_uri(sample_image))["messages"],
            extra_body={field: value},
        )
    assert (
        refused.value.body["param"] == field
        and refused.value.body["code"] == "unsupported_parameter"
    )
    assert field in refused.value.body["message"]


def test_fields_at_their_no_op_value_and_labels_are_accepted(client, sample_image):
    reply = client.chat.completions.create(
        model="tiny-test",
        messages=chat_body(data_uri(sample_image))["messages"],
        top_p=1,
        frequency_penalty=0,
        presence_penalty=0,
        logprobs=False,
        user="someone",
        metadata={"run": "x"},
        extra_body={"tools": [], "logit_bias": {}},
    )
    assert reply.choices[0].message.role == "assistant"


def test_a_tool_turn_or_a_tool_call_is_a_400(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="tiny-test",
            messages=[
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "1", "content": "42"},
                {"role": "user", "content": "so?"},
            ],
        )
    assert refused.value.body["code"] == "unsupported_parameter"


def test_an_unknown_model_is_a_404_and_the_bundle_name_or_folder_are_known(client, served_bundle):
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert (
        missing.value.body["code"] == "model_not_found" and missing.value.body["param"] == "model"
    )
    assert "tiny-test" in missing.value.body["message"]
    for name in ("tiny-test", served_bundle.name):
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])


def test_max_queue_0_means_no_waiting_not_no_service(keyless, sample_image):
    response = httpx.post(
        keyless.url + "/v1/chat/completions", json=chat_body(data_uri(sample_image)), timeout=60
    )
    assert response.status_code == 200, response.text


def test_max_tokens_counts_once_and_the_refusal_names_a_limit_that_fits(
    keyless, keyless_bundle, sample_image
):
    body = chat_body(data_uri(sample_image), max_tokens=9000)
    refused = httpx.post(keyless.url + "/v1/chat/completions", json=body, timeout=60)
    error = refused.json()["error"]
    assert refused.status_code == 400 and error["param"] == "max_tokens", error
    assert error["code"] == "context_length_exceeded"
    largest = int(error["message"].rsplit(" ", 1)[1])
    # the limit it names is exactly what admission takes: that many fits, one more does not
    pipeline = edge_et.open_pipeline(keyless_bundle)
    pipeline.check_fits(edge_et.RunOptions(answer_budget=largest))
    with pytest.raises(edge_et.InputError):
        pipeline.check_fits(edge_et.RunOptions(answer_budget=largest + 1))


def test_an_instruct_reasoners_max_tokens_is_its_reply_limit_not_twice_that():
    from edge_et.serve.chat import run_options
    from edge_et.serve.schema import ChatRequest

    body = ChatRequest.model_validate(
        {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1700}
    )
    instruct, thinking = run_options(body, thinking=False), run_options(body, thinking=True)
    assert (instruct.max_tokens, instruct.answer_budget) == (1700, None)  # the cue keeps its own
    assert (thinking.max_tokens, thinking.answer_budget) == (None, 1700)  # after the thought


def test_a_bad_json_body_names_no_param_and_has_a_code(served):
    with served.client() as http:
        response = http.post(
            "/v1/chat/completions",
            content=b'{"messages": [1,, 2]}',
            headers={"content-type": "application/json"},
        )
    error = response.json()["error"]
    assert (
        response.status_code == 400 and error["param"] is None and error["code"] == "invalid_json"
    )
    assert "not valid JSON" in error["message"]


@pytest.mark.parametrize("path", ["/v1/models", "/health", "/"])
def test_a_forged_host_is_refused_without_a_key(keyless, path):
    rebound = httpx.get(keyless.url + path, headers={"Host": "evil.example"})
    assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "host_not_allowed"
    port = keyless.url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"app.localhost:{port}", OPEN_HOST):
        assert httpx.get(keyless.url + path, headers={"Host": host}).status_code == 200, host


def test_a_forged_origin_is_refused_and_the_own_and_listed_ones_are_not(keyless, sample_image):
    body = json.dumps(chat_body(data_uri(sample_image), edge_et={"mode": "extract"}))
    port = keyless.url.rsplit(":", 1)[1]

    def post(origin: str) -> httpx.Response:
        return httpx.post(
            keyless.url + "/v1/chat/completions",
            content=body,
            timeout=60,
            headers={"Origin": origin, "content-type": "application/json"},
        )

    refused = post("http://evil.example")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
    assert post("null").status_code == 403
    assert post(f"http://127.0.0.1:{port}").status_code == 200  # the page's own requests
    assert post("http://app.example").status_code == 200  # --cors-origin


def test_a_server_with_a_key_answers_any_host(served):
    response = httpx.get(
        served.url + "/v1/models", headers={**served.headers, "Host": "my.lan.name"}
    )
    assert response.status_code == 200
