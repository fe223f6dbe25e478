"""Raw HTTP against the real server: every refusal is OpenAI error JSON with the right status,
a full queue is a 503 with Retry-After, a client that leaves stops its run, /health says 503
while loading, /metrics counts."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import httpx
import pytest

from tests.serve.conftest import (
    CORS_ORIGIN,
    ENDED_BY_ITSELF,
    LONG,
    MAX_BODY,
    MAX_QUEUE,
    chat_body,
    data_uri,
    long_stream,
    short_request,
)


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and "\n" not in error["message"]
    assert error["code"], error  # every error has a code a client can test
    assert "Traceback" not in response.text
    return error


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "data:image/png;base64," + base64.b64encode(b"<html>not a picture</html>").decode(),
            "image",
        ),
        ("data:image/png;base64,@@@notbase64", "base64"),
        ("data:image/png,plain", "base64"),
        ("https://example.com/cat.png", "data: URI"),
        ("ftp://example.com/cat.png", "scheme"),
    ],
)
def test_a_bad_image_is_a_400(served, url, says):
    with served.client() as client:
        error = error_of(client.post("/v1/chat/completions", json=chat_body(url)), 400)
    assert error["type"] == "invalid_request_error" and says in error["message"]


def test_a_picture_over_the_pixel_limit_is_a_400_read_from_its_header(served):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (5000, 4000)).save(buffer, "PNG")  # 20 MP > 16 MP, tiny file
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    with served.client() as client:
        error = error_of(client.post("/v1/chat/completions", json=chat_body(url)), 400)
    assert "megapixels" in error["message"]


def test_file_urls_only_under_the_media_dir(served):
    inside = (served.media_dir / "sample.png").as_uri()
    traversal = f"file://{served.media_dir}/../secret.png"
    with served.client() as client:
        ok = client.post("/v1/chat/completions", json=chat_body(inside))
        refused = client.post("/v1/chat/completions", json=chat_body(traversal))
    assert ok.status_code == 200, ok.text
    assert error_of(refused, 400)["code"] == "path_outside_media_dir"


def test_a_body_over_the_limit_is_a_413_declared_or_streamed(served):
    big = json.dumps(chat_body("data:image/png;base64," + "A" * MAX_BODY)).encode()
    with served.client() as client:
        declared = client.post(
            "/v1/chat/completions", content=big, headers={"content-type": "application/json"}
        )
        chunked = client.post(
            "/v1/chat/completions",
            content=iter([big[:1000], big[1000:]]),
            headers={"content-type": "application/json"},
        )
    assert error_of(declared, 413)["code"] == "request_too_large"
    assert error_of(chunked, 413)["code"] == "request_too_large"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}]
)
def test_a_missing_or_wrong_key_is_a_401(served, headers, sample_image):
    for path, send in (
        ("/v1/chat/completions", "post"),
        ("/v1/models", "get"),
        ("/metrics", "get"),
    ):
        kwargs = {"json": chat_body(data_uri(sample_image))} if send == "post" else {}
        response = getattr(httpx, send)(served.url + path, headers=headers, **kwargs)
        assert error_of(response, 401)["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
            "messages",
        ),
        ("not json", None),
        ('{"messages": [1, 2,, 3]}', None),
        ({"messages": [{"role": "user", "content": "x"}], "edge_et": {"budget": 3}}, "edge_et"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ],
)
def test_invalid_bodies_are_400s_naming_the_field(served, body, param):
    with served.client() as client:
        response = client.post(
            "/v1/chat/completions",
            content=body if isinstance(body, str) else json.dumps(body),
            headers={"content-type": "application/json"},
        )
    error = error_of(response, 400)
    assert error["param"] == param, error  # a bad JSON body has no field to name, not "13"


def test_health_is_503_while_loading_then_200_without_a_key(served):
    # 503 until the models are loaded, then 200, never back. (A load that ends before the
    # first probe connects shows only 200s: the probe races the load on a busy runner.)
    seen = served.health_seen
    assert seen[-1] == 200 and set(seen) <= {503, 200}
    assert seen == sorted(seen, key=lambda status: status == 200)
    response = httpx.get(served.url + "/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_unknown_paths_and_methods_are_error_json(served):
    error_of(httpx.get(served.url + "/v1/nothing"), 404)
    error_of(httpx.get(served.url + "/v1/chat/completions", headers=served.headers), 405)


def test_a_client_that_leaves_stops_its_run_within_a_few_tokens(served, sample_image):
    cancelled = served.metric("edge_et_cancelled_total")
    opened, stop = threading.Event(), threading.Event()
    reader = threading.Thread(target=long_stream, args=(served, sample_image, opened, stop))
    reader.start()
    assert opened.wait(60), "the long run never streamed reasoning"
    stop.set()
    reader.join(30)
    deadline = time.monotonic() + 60
    while served.metric("edge_et_cancelled_total") == cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.metric("edge_et_cancelled_total") == cancelled + 1
    pieces = served.metric("edge_et_streamed_pieces_total", stage="reasoning")
    time.sleep(0.5)
    assert served.metric("edge_et_streamed_pieces_total", stage="reasoning") == pieces
    assert served.metric("edge_et_slots_busy") == 0


def test_a_full_queue_is_a_503_with_retry_after_and_the_running_request_goes_on(
    served, sample_image
):
    opened, stop = threading.Event(), threading.Event()
    reader = threading.Thread(target=long_stream, args=(served, sample_image, opened, stop))
    reader.start()
    try:
        assert opened.wait(60)
        waiting = [
            threading.Thread(target=short_request, args=(served, sample_image))
            for _ in range(MAX_QUEUE)
        ]
        for thread in waiting:
            thread.start()
        deadline = time.monotonic() + 60
        while served.metric("edge_et_queue_depth") < MAX_QUEUE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not ENDED_BY_ITSELF, ENDED_BY_ITSELF
        with served.client() as client:
            refused = client.post("/v1/chat/completions", json=chat_body(data_uri(sample_image)))
        assert not ENDED_BY_ITSELF, ENDED_BY_ITSELF
        assert error_of(refused, 503)["code"] == "queue_full"
        assert refused.headers["retry-after"] == "1"
        assert served.metric("edge_et_slots_busy") == 1  # the running one was not cancelled
    finally:
        stop.set()
        reader.join(30)
    for thread in waiting:
        thread.join(60)
    assert served.metric("edge_et_rejections_total", reason="queue_full") >= 1


def test_metrics_count_requests_tokens_stages_and_caches(served, sample_image):
    before = {
        "ok": served.metric("edge_et_requests_total", path="/v1/chat/completions", status="200"),
        "tokens": served.metric("edge_et_tokens_total", stage="think", kind="generated"),
        "hits": served.metric("edge_et_cache_total", cache="embedding", result="hit"),
    }
    with served.client() as client:
        for _ in range(2):
            assert (
                client.post(
                    "/v1/chat/completions",
                    json=chat_body(
                        data_uri(sample_image), edge_et={"hint": f"metrics {time.time()}"}
                    ),
                ).status_code
                == 200
            )
    assert (
        served.metric("edge_et_requests_total", path="/v1/chat/completions", status="200")
        == before["ok"] + 2
    )
    assert (
        served.metric("edge_et_tokens_total", stage="think", kind="generated")
        >= before["tokens"] + 2 * 7
    )
    assert (
        served.metric("edge_et_cache_total", cache="embedding", result="hit") >= before["hits"] + 1
    )
    assert served.metric("edge_et_stage_seconds_total", stage="think", phase="decode") > 0
    assert (
        served.metric("edge_et_model_loads") == 2
        and served.metric("process_resident_memory_bytes") > 0
    )


def test_browser_pages_from_the_allowed_origin_only(served):
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = httpx.options(
        served.url + "/v1/chat/completions", headers={"Origin": CORS_ORIGIN, **preflight}
    )
    other = httpx.options(
        served.url + "/v1/chat/completions", headers={"Origin": "http://evil.example", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "access-control-allow-origin" not in other.headers


def test_a_client_that_leaves_a_whole_request_stops_its_run_and_frees_the_slot(
    served, sample_image
):
    """Not streamed: nothing is written until the run ends, so only the closed connection tells
    the server; the run must stop at once (not run its 32,000-token thought for nobody)."""
    cancelled = served.metric("edge_et_cancelled_total")
    pieces = served.metric("edge_et_streamed_pieces_total", stage="reasoning")
    payload = json.dumps(chat_body(data_uri(sample_image), **LONG)).encode()
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {served.key}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        deadline = time.monotonic() + 60
        while served.metric("edge_et_streamed_pieces_total", stage="reasoning") < pieces + 50:
            assert time.monotonic() < deadline, "the long run never reached its reasoning"
            time.sleep(0.05)
        closed_at = time.monotonic()
    while served.metric("edge_et_cancelled_total") == cancelled:
        assert time.monotonic() < closed_at + 5, "the run went on after its client left"
        time.sleep(0.02)
    stopped = served.metric("edge_et_streamed_pieces_total", stage="reasoning")
    time.sleep(0.3)
    assert served.metric("edge_et_streamed_pieces_total", stage="reasoning") == stopped
    assert served.metric("edge_et_slots_busy") == 0
    assert served.metric("edge_et_completions_total", outcome="cancelled") >= 1
    short_request(served, sample_image)  # the slot takes the next request
