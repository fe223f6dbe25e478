"""`edge-et serve` under load, and a soak: does it answer everything, how fast, does it leak?

Load: N concurrent clients x M requests each (half streamed, half whole, every fourth on a
new picture) against a real server on 127.0.0.1, once with --parallel 1 and once with
--parallel 2, side by side: failures, p50/p95 latency, throughput and their ratio.
Soak: S requests, each on a distinct picture (random pixels), from 2 clients; the server's RSS
is sampled every 50 requests. Growth is measured after a warm-up (the first quarter) that
takes past the caches' bounds, so a cache still filling is not read as a leak, three ways:
caches off (any growth is a leak), caches bounded small (they fill during the warm-up; must
stay <= 5%), and the default caches (which grow until their bounds, far beyond the soak).

Default bundle: the tiny random test bundle (random weights, short decoding), so the numbers
are the server's own overhead plus tiny models, not a real model's speed.

    python -m benchmarks.serve_load [--bundle DIR] [--clients 4] [--requests 25] [--soak 2000]
    python -m benchmarks.serve_load --no-load --soak 20000 --soak-caches off --name serve_soak_long
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
KEY = "bench-key"
QUESTION = "What color is the circle?\nA. blue\nB. green\nC. red\nD. yellow"
RSS_EVERY = 50
WARM_UP = 0.25  # share of the soak before growth is measured
# The caches grow by design until their bounds (llama.cpp's embedding cache: 256 MiB; a tiny
# model's picture is ~4.5 KB of embeddings, so ~60k pictures). Bounded: 1 MiB holds ~230
# pictures' embeddings and 200 extractions, both full long before the warm-up's 500 pictures.
SOAK_CACHES = {
    "off": ("--image-cache", "0", "--extraction-cache", "0"),
    "bounded": ("--image-cache", "1MiB", "--extraction-cache", "200"),
    "default": (),
}


def picture(seed: int, size: int = 96) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def body(image: str, stream: bool) -> dict:
    return {
        "model": "bench",
        "stream": stream,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image}},
                    {"type": "text", "text": QUESTION},
                ],
            }
        ],
    }


class Server:
    """`edge-et serve` in a subprocess; `rss()` reads its VmRSS."""

    def __init__(self, bundle: Path, port: int, *options: str):
        command = [
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "serve",
            "--bundle",
            str(bundle),
            "--port",
            str(port),
            "--api-key",
            KEY,
            "--log-level",
            "warning",
            "--max-queue",
            "64",
            *options,
        ]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def rss(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def one_request(client: httpx.Client, payload: dict) -> tuple[float, bool]:
    """Latency and success of one request (a stream counts once [DONE] has arrived)."""
    started = time.perf_counter()
    try:
        if payload["stream"]:
            with client.stream("POST", "/v1/chat/completions", json=payload) as response:
                ok = response.status_code == 200 and any(
                    line == "data: [DONE]" for line in response.iter_lines()
                )
        else:
            response = client.post("/v1/chat/completions", json=payload)
            ok = response.status_code == 200 and bool(response.json()["choices"])
    except httpx.HTTPError:
        ok = False
    return time.perf_counter() - started, ok


def drive(server: Server, payloads: list[list[dict]], on_done=lambda: None) -> dict:
    """One thread per client, each sending its list in order; latencies and failures."""
    latencies, failures, lock = [], [0], threading.Lock()

    def client_loop(mine: list[dict]) -> None:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300
        ) as client:
            for payload in mine:
                seconds, ok = one_request(client, payload)
                with lock:
                    latencies.append(seconds)
                    failures[0] += not ok
                on_done()

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(mine,)) for mine in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "failed": failures[0],
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 2),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
    }


def load_run(bundle: Path, parallel: int, clients: int, requests: int, port: int) -> dict:
    images = [picture(1000 + i) for i in range(max(1, clients * requests // 4))]
    payloads = [
        [body(images[(c * requests + r) // 4], stream=(r % 2 == 0)) for r in range(requests)]
        for c in range(clients)
    ]
    server = Server(bundle, port, "--parallel", str(parallel), "--threads", "1")
    try:
        return {"parallel": parallel, **drive(server, payloads)}
    finally:
        server.stop()


def soak_run(bundle: Path, total: int, port: int, caches: tuple[str, ...]) -> dict:
    server = Server(bundle, port, "--threads", "1", "--keep-alive", "-1", *caches)
    samples, done, lock = [], [0], threading.Lock()

    def sampled() -> None:
        with lock:
            done[0] += 1
            if done[0] % RSS_EVERY == 0:
                samples.append((done[0], server.rss()))

    payloads = [
        [body(picture(c * total + i), stream=(i % 2 == 0)) for i in range(total // 2)]
        for c in range(2)
    ]
    try:
        result = drive(server, payloads, sampled)
    finally:
        server.stop()
    after = [(count, rss) for count, rss in samples if count >= total * WARM_UP]
    warm, final = after[0][1], samples[-1][1]
    slope = (
        np.polyfit([c for c, _ in after], [r for _, r in after], 1)[0] if len(after) > 2 else 0.0
    )
    return {
        **result,
        "distinct_images": total,
        "cache_options": " ".join(caches) or "(defaults)",
        "warm_up_requests": after[0][0],
        "rss_after_warmup_bytes": warm,
        "rss_final_bytes": final,
        "rss_growth": round((final - warm) / warm, 4),
        "rss_slope_bytes_per_request": round(float(slope), 1),
        "rss_max_bytes": max(rss for _, rss in samples),
        "rss_samples": samples,
    }


def machine() -> dict:
    from edge_et.core.host import cpu_model

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def tiny_short_bundle() -> Path:
    from export.tiny.bundle import build_tiny_bundle  # the test bundle's recipe, cached
    from tests.helpers.short_bundle import short_bundle

    folder = Path.home() / ".cache" / "edge-et" / "serve-bench"
    if not (folder / "short" / "bundle.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        short_bundle(build_tiny_bundle(), folder)
    return folder / "short"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=25)
    parser.add_argument("--soak", type=int, default=2000)
    parser.add_argument(
        "--soak-caches",
        default=",".join(SOAK_CACHES),
        help="which soaks to run: off, bounded, default (comma-separated)",
    )
    parser.add_argument("--no-load", action="store_true", help="soak only")
    parser.add_argument("--name", default="serve_load", help="results file name (without .json)")
    parser.add_argument("--port", type=int, default=18431)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    bundle = args.bundle or tiny_short_bundle()
    report = {
        "machine": machine(),
        "bundle": str(bundle),
        "weights": "random (tiny test bundle)" if args.bundle is None else "as the bundle says",
        "clients": args.clients,
        "requests_per_client": args.requests,
    }
    if not args.no_load:
        report["load"] = [
            load_run(bundle, parallel, args.clients, args.requests, args.port)
            for parallel in (1, 2)
        ]
        print(json.dumps(report["load"]), flush=True)
    if args.soak:
        for name in args.soak_caches.split(","):
            caches = SOAK_CACHES[name.strip()]
            report[f"soak_caches_{name}"] = soak_run(bundle, args.soak, args.port, caches)
            print(
                json.dumps(
                    {k: v for k, v in report[f"soak_caches_{name}"].items() if k != "rss_samples"}
                ),
                flush=True,
            )
    report["machine"]["loadavg_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2))
    print(
        json.dumps(
            {
                key: (
                    {k: v for k, v in value.items() if k != "rss_samples"}
                    if key.startswith("soak")
                    else value
                )
                for key, value in report.items()
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
