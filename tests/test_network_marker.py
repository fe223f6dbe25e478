"""The `network` marker: tests that download real wheels skip quickly, with the reason, offline."""

from __future__ import annotations

import socket
import time

from tests.helpers import network


def test_an_unreachable_index_is_a_reason_given_quickly(monkeypatch):
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    network.offline_reason.cache_clear()
    started = time.monotonic()
    try:
        reason = network.offline_reason()
    finally:
        network.offline_reason.cache_clear()
    assert (
        reason and f"127.0.0.1:{port} is unreachable" in reason and time.monotonic() - started < 4
    )


def test_a_listening_index_is_online(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.getsockname()[1]}/simple")
        network.offline_reason.cache_clear()
        try:
            assert network.offline_reason() is None
        finally:
            network.offline_reason.cache_clear()


def test_the_marker_is_registered(pytestconfig):
    assert any(line.startswith("network:") for line in pytestconfig.getini("markers"))
