"""The reference web app (web/) in headless Chromium beside the Python runtime, on one package.

    python -m benchmarks.web --package DIR [--label demo] [--runs 1]

DIR is an `edge-et export mobile --web` package (the demo's: `edge-et export mobile --bundle
models/bundles/default --out DIR --web`). The sample picture and its question, the package's own
decoding (the demo's reasoner is greedy), seed 0:

- Chromium (Debian's, through selenium, the page served on 127.0.0.1 by web/serve.mjs, WebAssembly
  threads as the page picks them): load (manifest, sha256 of every file, sessions), image encode,
  prefill and decode tok/s per stage from the page's own timings; peak memory as the sum of the
  resident memory of Chromium's processes, sampled every 0.2 s (the WebAssembly heap lives in the
  renderer's);
- the Python runtime (`edge-et run --bundle DIR --json`, a fresh process): the same numbers from
  its report, and its peak RSS.

Writes benchmarks/results/web-<label>.{json,md}, with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.bench_configs import RESULTS, say

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"


def chromium_run(package: Path, image: Path, question: str, profile: Path) -> dict:
    """One page load and one Extract+Think in headless Chromium; the page's numbers and peak memory."""
    import psutil
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = subprocess.Popen(
        ["node", str(WEB / "serve.mjs"), "--package", str(package), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = server.stdout.readline().strip()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        root = psutil.Process(driver.service.process.pid)
        while not stop.is_set():
            total = 0
            for proc in root.children(recursive=True):
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], total)
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        started = time.perf_counter()
        driver.get(url)
        WebDriverWait(driver, 1800).until(
            lambda page: page.find_element(By.ID, "status").text in ("package loaded", "error")
        )
        wall_load = time.perf_counter() - started
        loaded = driver.execute_script("return window.edgeEt")
        if loaded["error"]:
            raise SystemExit(f"the page could not load the package: {loaded['error']}")
        box = driver.find_element(By.ID, "question")
        box.clear()
        box.send_keys(question)
        driver.find_element(By.ID, "image").send_keys(str(image))
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 3600).until(
            lambda page: page.execute_script(
                "return window.edgeEt.result !== null || window.edgeEt.error !== null"
            )
        )
        page = driver.execute_script("return window.edgeEt")
        if page["error"]:
            raise SystemExit(f"the page failed: {page['error']}")
        version = driver.capabilities.get("browserVersion")
    finally:
        stop.set()
        watcher.join()
        driver.quit()
        server.terminate()
    result = page["result"]
    stages = {
        name: {
            "prompt_tokens": s["prompt_tokens"],
            "image_encode_s": (s.get("image_encode_ms") or 0) / 1000 or None,
            "prefill_s": s["prefill_ms"] / 1000,
            "generated_tokens": s["generated_tokens"],
            "decode_s": s["decode_ms"] / 1000,
        }
        for name, s in result["stages"].items()
    }
    return {
        "runtime": f"Chromium {version}, onnxruntime-web (wasm), {page['loaded']['threads']} thread(s)",
        "load_s": page["loaded"]["load_ms"] / 1000,
        "load_wall_s": wall_load,
        "stages": stages,
        "peak_memory_bytes": peak[0],
        "peak_memory_what": "sum of the RSS of Chromium's processes",
        "extraction": result["extraction"],
        "answer": result["answer"],
        "tokens": result["tokens"],
    }


def python_run(package: Path, image: Path, question: str) -> dict:
    """`edge-et run` on the package in a fresh process: its report's numbers."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "run",
            "--bundle",
            str(package),
            "--image",
            str(image),
            "--question",
            question,
            "--seed",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    report = json.loads(done.stdout)
    import onnxruntime

    stages = {
        name: {
            k: s.get(k)
            for k in (
                "prompt_tokens",
                "image_encode_s",
                "prefill_s",
                "generated_tokens",
                "decode_s",
                "load_s",
            )
        }
        for name, s in report["stages"].items()
    }
    return {
        "runtime": f"Python, onnxruntime {onnxruntime.__version__} CPU",
        "stages": stages,
        "load_s": sum(s.get("load_s") or 0 for s in report["stages"].values()),
        "peak_memory_bytes": report.get("peak_rss_bytes"),
        "peak_memory_what": "peak RSS of the process",
        "extraction": report.get("extraction"),
        "answer": report.get("answer"),
    }


def rate(stage: dict, tokens: str, seconds: str) -> str:
    return f"{stage[tokens] / stage[seconds]:.1f}" if stage.get(seconds) else "-"


def table(label: str, runs: dict, load: dict) -> str:
    lines = [
        f"# The web app beside the Python runtime: {label}",
        "",
        (
            f"Package `{runs['package']}`; the sample picture and question, greedy, seed 0. "
            f"Load average before {load['before']}, after {load['after']} (2-core shared machine)."
        ),
        "",
        "| runtime | load s | extract: encode s, prefill tok/s, decode tok/s | reasoning: prefill tok/s, decode tok/s | peak memory MiB |",
        "|---|---|---|---|---|",
    ]
    for key in ("chromium", "python"):
        r = runs[key]
        e, t = r["stages"]["extract"], r["stages"]["think"]
        lines.append(
            f"| {r['runtime']} | {r['load_s']:.1f} | {e['image_encode_s'] or 0:.2f}, "
            f"{rate(e, 'prompt_tokens', 'prefill_s')}, {rate(e, 'generated_tokens', 'decode_s')} | "
            f"{rate(t, 'prompt_tokens', 'prefill_s')}, {rate(t, 'generated_tokens', 'decode_s')} | "
            f"{(r['peak_memory_bytes'] or 0) / 2**20:,.0f} ({r['peak_memory_what']}) |"
        )
    same = runs["chromium"]["extraction"] == runs["python"]["extraction"]
    lines += [
        "",
        (
            f"Extraction equal: {same}. Answers: page {runs['chromium']['answer']!r}, "
            f"Python {runs['python']['answer']!r}."
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, required=True)
    parser.add_argument("--label", default="demo")
    args = parser.parse_args(argv)
    from edge_et.core.images import SAMPLE_QUESTION, write_sample_image

    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"edge-et-web-bench-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    image = write_sample_image(work / "sample.png")
    load = {"before": " ".join(Path("/proc/loadavg").read_text().split()[:3])}
    say("Chromium: the page loads the package and runs Extract+Think")
    chromium = chromium_run(args.package.resolve(), image, SAMPLE_QUESTION, work / "profile")
    say("Python runtime: edge-et run on the same package")
    python = python_run(args.package.resolve(), image, SAMPLE_QUESTION)
    load["after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    runs = {
        "package": str(args.package),
        "chromium": chromium,
        "python": python,
        "load_average": load,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"web-{args.label}.json").write_text(json.dumps(runs, indent=2) + "\n")
    (RESULTS / f"web-{args.label}.md").write_text(table(args.label, runs, load))
    print(table(args.label, runs, load))


if __name__ == "__main__":
    main()
