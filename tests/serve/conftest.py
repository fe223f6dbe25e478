"""One real `edge-et serve` process for every serve test: the tiny random bundle (short
decoding), a free loopback port, an API key, a media folder, a small queue and body limit.

Started once per session (about 2 s); tests that need a long run ask for a large think budget
(the tiny reasoner never stops by itself, so the run lasts until the budget or the context).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.short_bundle import short_bundle

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key-123"
MAX_QUEUE = 2
MAX_BODY = 2_000_000
CORS_ORIGIN = "http://app.example"
ENDED_BY_ITSELF: list[str] = []  # the last line of long streams that ended before `stop`
LONG_CTX = 40960  # the tiny Qwen3's trained context
# Greedy: the tiny reasoner then repeats one token and never samples EOS (sampled at the
# bundle's temperature it does, now and then, after a few thousand tokens).
LONG = {"temperature": 0.0, "edge_et": {"think_budget": 32000}}
QUESTION = "What color is the circle?\nA. blue\nB. green\nC. red\nD. yellow"


@dataclass
class Served:
    url: str
    key: str
    media_dir: Path
    log: Path
    health_seen: list[int] = field(default_factory=list)  # /health statuses while starting

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=60, **kwargs)

    def metric(self, name: str, **labels) -> float:
        """The value of one sample of /metrics (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", headers=self.headers, timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def chat_body(image_url: str, question: str = QUESTION, **extra) -> dict:
    return {
        "model": "tiny-test",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_url}},
                    {"type": "text", "text": question},
                ],
            }
        ],
        **extra,
    }


def long_stream(served, sample_image, opened: threading.Event, stop: threading.Event):
    """A long streamed run that reads until `stop`, then leaves (closes the connection)."""
    with served.client() as client:
        with client.stream(
            "POST",
            "/v1/chat/completions",
            json=chat_body(data_uri(sample_image), stream=True, **LONG),
        ) as response:
            last = ""
            for line in response.iter_lines():
                if "reasoning_content" in line:
                    opened.set()
                if stop.is_set():
                    return
                last = line or last
            ENDED_BY_ITSELF.append(last[:500])  # a long run must not end before `stop`


def short_request(served, sample_image, hint: str | None = None) -> None:
    body = chat_body(data_uri(sample_image), **({"edge_et": {"hint": hint}} if hint else {}))
    with served.client() as client:
        assert client.post("/v1/chat/completions", json=body).status_code == 200


@pytest.fixture(scope="session")
def served_bundle(tiny_bundle, tmp_path_factory) -> Path:
    """The short tiny bundle with the reasoner's whole trained context: a LONG run lasts
    tens of seconds even on a fast machine, so the tests that need a busy slot do not race."""
    bundle = short_bundle(tiny_bundle, tmp_path_factory.mktemp("serve-bundle"))
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["reasoning"]["n_ctx"] = LONG_CTX
    (bundle / "bundle.json").write_text(json.dumps(manifest, indent=2))
    return bundle


@pytest.fixture(scope="session")
def served(served_bundle, sample_image, tmp_path_factory) -> Served:
    folder = tmp_path_factory.mktemp("serve")
    media = folder / "media"
    media.mkdir()
    (media / "sample.png").write_bytes(sample_image.read_bytes())
    (folder / "secret.png").write_bytes(sample_image.read_bytes())
    with start_server(
        served_bundle,
        folder,
        "--max-queue",
        str(MAX_QUEUE),
        "--max-body",
        str(MAX_BODY),
        "--allow-media-dir",
        str(media),
        "--cors-origin",
        CORS_ORIGIN,
    ) as server:
        server.media_dir = media
        yield server


@contextmanager
def start_server(
    bundle: Path | None,
    folder: Path,
    *options: str,
    env: dict[str, str] | None = None,
    key: str | None = KEY,
) -> Iterator[Served]:
    """`edge-et serve` on `bundle` (None: the bundles home's, `env` may name it) in a
    subprocess on a free port, once /health says 200 (`key` None: a server without an API key)."""
    port, log = free_port(), folder / f"server-{time.monotonic_ns()}.log"
    command = [
        sys.executable,
        "-m",
        "edge_et.cli.main",
        "serve",
        *(["--bundle", str(bundle)] if bundle is not None else []),
        "--port",
        str(port),
        "--threads",
        "1",
        "--keep-alive",
        "-1",
        "--log-level",
        "warning",
        *(("--api-key", key) if key else ()),
        *options,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Served(url=f"http://127.0.0.1:{port}", key=key or "", media_dir=folder, log=log)
    try:
        _wait_healthy(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_healthy(server: Served, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {server.log.read_text()[-2000:]}")
        try:
            status = httpx.get(f"{server.url}/health", timeout=5).status_code
        except httpx.TransportError:
            time.sleep(0.02)
            continue
        server.health_seen.append(status)
        if status == 200:
            return
        time.sleep(0.02)
    raise RuntimeError("the server did not become healthy in 120 s")
