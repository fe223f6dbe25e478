"""Scheduling and the safe defaults: swap groups queued requests by stage, the server refuses to
listen beyond loopback without a key, streamed thoughts split at </think> however the pieces
fall, keep-alive durations parse."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from edge_et.cli.serve import parse_duration
from edge_et.errors import InputError
from edge_et.serve.completion import ThoughtSplitter, split_thought
from tests.serve.conftest import (
    ROOT,
    chat_body,
    data_uri,
    long_stream,
    short_request,
    start_server,
)


@pytest.mark.slow
def test_swap_runs_queued_requests_stage_by_stage_loading_each_model_once_then_unloads_idle(
    served_bundle, sample_image, tmp_path
):
    with start_server(
        served_bundle, tmp_path, "--residency", "swap", "--max-queue", "8", "--keep-alive", "1s"
    ) as server:
        opened, stop = threading.Event(), threading.Event()
        reader = threading.Thread(target=long_stream, args=(server, sample_image, opened, stop))
        reader.start()
        assert opened.wait(60)  # the slot is busy reasoning: what comes now waits in the queue
        # distinct hints: each needs its own extraction (the same hint would hit the cache)
        waiting = [
            threading.Thread(target=short_request, args=(server, sample_image, f"hint {i}"))
            for i in range(4)
        ]
        for thread in waiting:
            thread.start()
        deadline = time.monotonic() + 60
        while server.metric("edge_et_queue_depth") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        loads = server.metric("edge_et_model_loads")
        stop.set()
        reader.join(30)
        for thread in waiting:
            thread.join(60)
        # one group of four: perception loads once, reasoning once (one by one: 8 loads)
        assert server.metric("edge_et_model_loads") - loads == 2
        assert server.metric("edge_et_completions_total", outcome="ok") == 4
        deadline = time.monotonic() + 10  # idle for the keep-alive: the slot frees its model
        while server.metric("edge_et_models_resident") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.metric("edge_et_models_resident") == 0
        assert server.metric("edge_et_model_unloads_total") >= 1
        with server.client() as client:  # and loads it again for the next request
            assert (
                client.post(
                    "/v1/chat/completions", json=chat_body(data_uri(sample_image))
                ).status_code
                == 200
            )


def test_a_non_loopback_address_without_a_key_is_refused_before_binding(served_bundle):
    command = [
        sys.executable,
        "-m",
        "edge_et.cli.main",
        "serve",
        "--bundle",
        str(served_bundle),
        "--host",
        "0.0.0.0",
        "--port",
        "0",
    ]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: refusing to listen on 0.0.0.0 without an API key")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "pieces",
    [
        ["<think>ab", "c</th", "ink>\n\nB"],
        ["ab", "c<", "/think>", "B"],
        ["abc</think>B"],
        ["a", "b", "c", "<", "/", "t", "hink>", "\n", "B"],
    ],
)
def test_the_thought_splits_at_the_close_tag_however_the_pieces_fall(pieces):
    splitter = ThoughtSplitter(thinking=True)
    parts = [splitter.feed(piece) for piece in pieces]
    assert "".join(thought for thought, _ in parts) == "abc"
    assert "".join(answer for _, answer in parts) == "B"
    assert split_thought("".join(pieces), thinking=True) == ("abc", "B")
    assert ThoughtSplitter(thinking=False).feed("a</think>") == ("", "a</think>")


def test_keep_alive_durations():
    assert (
        parse_duration("5m") == 300 and parse_duration("30s") == 30 and parse_duration("1h") == 3600
    )
    assert parse_duration("-1") is None and parse_duration("0") == 0
    with pytest.raises(InputError, match="--keep-alive"):
        parse_duration("soon")
