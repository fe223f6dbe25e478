"""Many bundles, one server, against one server per bundle, at the same memory budget.

Three tiny bundles (tests/helpers/many_bundles.py: alpha and beta share a reasoning GGUF,
gamma has its own models) and a budget B that holds one pair, read from a first server's
own figures (its runtime baseline + the two largest planned models + half the smaller one).
Each setting gets the same load: C clients per bundle, all at once, each sending R requests
(half streamed, every fourth on a new picture), on 127.0.0.1:

- one:   one `edge-et serve` of the bundles home with --mem-budget B (the pool shares the
         reasoner, unloads least recently used, never overcommits);
- split: three one-bundle servers with --mem-budget B/3 each (the honest split of B: each
         pays the runtime again, and its plan shrinks contexts or refuses);
- alone: three one-bundle servers with --mem-budget B each, every one planning as if alone
         (what two separate servers do today): the sum of their peak RSS is what the machine
         must hold.

Per bundle: requests, failures, throughput, p50/p95; per setting: loads, evictions, the peak
RSS by each process's own accounting (VmHWM), the load average. The tiny models are random:
the numbers are the scheduling's cost, not a real model's speed.

    python -m benchmarks.serve_many [--clients 2] [--requests 12]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchmarks.serve_load import KEY, QUESTION, machine, picture

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
NAMES = ("alpha", "beta", "gamma")


class Server:
    """`edge-et serve` in a subprocess, healthy; `figures()` reads its /v1/models."""

    def __init__(self, port: int, *options: str, home: Path | None = None):
        command = [
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "serve",
            "--port",
            str(port),
            "--api-key",
            KEY,
            "--log-level",
            "warning",
            "--max-queue",
            "64",
            "--threads",
            "1",
            "--keep-alive",
            "-1",
            *options,
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)} | (
            {"EDGE_ET_BUNDLES": str(home)} if home else {}
        )
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(Path(tempfile.gettempdir()) / f"serve_many-{port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {Path(self.log.name).read_text()[-1500:]}")
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def figures(self) -> dict:
        return httpx.get(
            self.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        ).json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def body(model: str, image: str, stream: bool, seed: int) -> dict:
    return {
        "model": model,
        "stream": stream,
        "seed": seed,
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


def one(client: httpx.Client, payload: dict) -> tuple[float, bool]:
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


def drive(urls: dict[str, str], clients: int, requests: int) -> dict:
    """C clients per bundle, all at once; per bundle: latencies, failures, throughput."""
    images = [picture(2000 + i) for i in range(max(1, requests // 4 + 1))]
    seen: dict[str, list] = {name: [] for name in urls}
    lock = threading.Lock()

    def loop(name: str, c: int) -> None:
        with httpx.Client(
            base_url=urls[name], headers={"Authorization": f"Bearer {KEY}"}, timeout=600
        ) as client:
            for r in range(requests):
                result = one(
                    client, body(name, images[r // 4], stream=r % 2 == 0, seed=c * 1000 + r)
                )
                with lock:
                    seen[name].append(result)

    started = time.perf_counter()
    threads = [
        threading.Thread(target=loop, args=(name, c)) for name in urls for c in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    per = {}
    for name, results in seen.items():
        ordered = sorted(seconds for seconds, _ in results)
        per[name] = {
            "requests": len(results),
            "failed": sum(not ok for _, ok in results),
            "throughput_rps": round(len(results) / wall, 3),
            "p50_s": round(statistics.median(ordered), 3),
            "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        }
    total = sum(len(results) for results in seen.values())
    return {"wall_s": round(wall, 2), "throughput_rps": round(total / wall, 3), "bundles": per}


def pool_counts(figures: list[dict]) -> dict:
    models = [m for f in figures for m in f["edge_et"]["models"]]
    return {
        "loads": sum(m["loads"] for m in models),
        "evictions": sum(m["evictions"] for m in models),
        "swap_unloads": sum(m["swap_unloads"] for m in models),
        "peak_rss_bytes": sum(f["edge_et"]["memory"]["peak_rss_bytes"] for f in figures),
        "plans": {card["id"]: card["edge_et"]["plan"] for f in figures for card in f["data"]},
    }


def run_one(home: Path, budget: int, port: int, clients: int, requests: int) -> dict:
    server = Server(port, "--mem-budget", str(budget), home=home)
    try:
        result = drive({name: server.url for name in NAMES}, clients, requests)
        return {
            "setting": "one",
            "budget_bytes": budget,
            **result,
            **pool_counts([server.figures()]),
        }
    finally:
        server.stop()


def run_separate(
    home: Path, budget: int, port: int, clients: int, requests: int, setting: str
) -> dict:
    servers = {}
    try:
        for i, name in enumerate(NAMES):
            servers[name] = Server(
                port + i, "--bundle", str(home / name), "--mem-budget", str(budget)
            )
        result = drive({name: s.url for name, s in servers.items()}, clients, requests)
        return {
            "setting": setting,
            "budget_bytes": budget,
            **result,
            **pool_counts([s.figures() for s in servers.values()]),
        }
    except RuntimeError as error:  # a one-bundle server that refuses its budget
        return {
            "setting": setting,
            "budget_bytes": budget,
            "refused": str(error).splitlines()[-1][:300],
        }
    finally:
        for server in servers.values():
            server.stop()


def pair_budget(home: Path, port: int) -> tuple[int, dict]:
    server = Server(port, home=home)
    try:
        figures = server.figures()
    finally:
        server.stop()
    sizes = {
        role: stage["bytes"] for role, stage in figures["data"][0]["edge_et"]["stages"].items()
    }
    baseline = figures["edge_et"]["memory"]["baseline_bytes"]
    return baseline + sum(sizes.values()) + min(sizes.values()) // 2, {
        "baseline_bytes": baseline,
        **sizes,
    }


def report(data: dict) -> str:
    mib = 2**20
    lines = [
        "# Many bundles, one server (`python -m benchmarks.serve_many`)",
        "",
        (
            f"{data['machine']['cpu']}, {data['machine']['cores']} cores; load average "
            f"{' '.join(f'{x:.2f}' for x in data['machine']['loadavg_start'])} at the start, "
            f"{' '.join(f'{x:.2f}' for x in data['loadavg_end'])} at the end. Budget B = "
            f"{data['budget_bytes'] / mib:,.0f} MiB (runtime {data['figures']['baseline_bytes'] / mib:,.0f} MiB "
            f"+ perception {data['figures']['perception'] / mib:,.0f} + reasoning "
            f"{data['figures']['reasoning'] / mib:,.0f} + half the smaller model: one pair, not three models). "
            f"{data['clients']} clients per bundle x {data['requests']} requests, all bundles at once."
        ),
        "",
        "| setting | bundle | requests | failed | req/s | p50 s | p95 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in data["runs"]:
        if "refused" in run:
            lines.append(f"| {run['setting']} | all | - | refused | - | - | - |")
            continue
        for name, b in run["bundles"].items():
            lines.append(
                f"| {run['setting']} | {name} | {b['requests']} | {b['failed']} | "
                f"{b['throughput_rps']} | {b['p50_s']} | {b['p95_s']} |"
            )
    lines += [
        "",
        (
            "| setting | budget per process | total req/s | wall s | loads | evictions | "
            "swap unloads | peak RSS (sum of processes) |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in data["runs"]:
        if "refused" in run:
            lines.append(
                f"| {run['setting']} | {run['budget_bytes'] / mib:,.0f} MiB | refused: "
                f"{run['refused']} | | | | | |"
            )
            continue
        lines.append(
            f"| {run['setting']} | {run['budget_bytes'] / mib:,.0f} MiB | {run['throughput_rps']} | "
            f"{run['wall_s']} | {run['loads']} | {run['evictions']} | {run['swap_unloads']} | "
            f"{run['peak_rss_bytes'] / mib:,.0f} MiB |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--port", type=int, default=18531)
    parser.add_argument("--name", default="serve_many")
    args = parser.parse_args()
    from export.tiny.bundle import build_tiny_bundle
    from tests.helpers.many_bundles import many_bundles

    home = Path.home() / ".cache" / "edge-et" / "serve-many" / "home"
    if not all((home / name / "bundle.json").exists() for name in NAMES):
        many_bundles(build_tiny_bundle(), home)
    OUT.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine(), "clients": args.clients, "requests": args.requests}
    budget, figures = pair_budget(home, args.port)
    data.update(budget_bytes=budget, figures=figures)
    data["runs"] = [
        run_one(home, budget, args.port, args.clients, args.requests),
        run_separate(home, budget // 3, args.port + 10, args.clients, args.requests, "split"),
        run_separate(home, budget, args.port + 20, args.clients, args.requests, "alone"),
    ]
    data["loadavg_end"] = os.getloadavg()
    (OUT / f"{args.name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (OUT / f"{args.name}.md").write_text(report(data))
    print(report(data))


if __name__ == "__main__":
    main()
