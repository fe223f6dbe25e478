"""Soak: one `edge-et run --batch` process answering >= 1,000 lines over distinct images; does it leak?

The tiny test bundle (random-weight Qwen2-VL perception + Qwen3 thinking reasoning, a few MB:
every answer is noise, the runtime path is the real one: llama.cpp + libmtmd, the image
decoder, the embedding cache, the results journal) with short decoding so that a thousand
lines take minutes. Every line has its own picture (drawn from the line's number), so nothing
is answered from a cache. The parent samples the child's resident memory (VmRSS of
/proc/PID/status) with the number of result lines written so far.

    python -m benchmarks.soak_batch [--lines 1000] [--threads 1] [--out benchmarks/results]

Criterion (issue 15): RSS growth after the warm-up (the first tenth of the lines) <= 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
DECODING = {"extract": {"max_tokens": 16}, "think": {"budget": 8, "answer_budget": 4}}
QUESTION = "What shape is in the picture?\nA. circle\nB. square\nC. triangle\nD. star"
LIMIT = 0.05


def soak_bundle(folder: Path) -> Path:
    """The tiny bundle's files with short decoding in its bundle.json."""
    from export.tiny.bundle import build_tiny_bundle

    target = folder / "bundle"
    shutil.copytree(build_tiny_bundle(), target)
    manifest = json.loads((target / "bundle.json").read_text())
    (target / "bundle.json").write_text(json.dumps(manifest | {"decoding": DECODING}, indent=2))
    return target


def batch_file(folder: Path, lines: int) -> Path:
    """`lines` questions, each about a picture of its own."""
    rows = []
    for number in range(lines):
        rng = random.Random(number)
        size = rng.randrange(40, 96)
        picture = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
        box = sorted(rng.sample(range(size), 2))
        ImageDraw.Draw(picture).ellipse(
            (box[0], box[0], box[1], box[1]), fill=tuple(rng.randrange(256) for _ in range(3))
        )
        picture.save(folder / f"{number}.png")
        rows.append(json.dumps({"image": f"{number}.png", "question": QUESTION, "id": number}))
    path = folder / "batch.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def soak(bundle: Path, batch: Path, output: Path, threads: int, every_s: float = 0.5) -> dict:
    """Run the batch in one child process; sample (seconds, lines written, RSS) until it ends."""
    command = [
        sys.executable,
        "-m",
        "edge_et.cli.main",
        "run",
        "--bundle",
        str(bundle),
        "--batch",
        str(batch),
        "--output",
        str(output),
        "--seed",
        "0",
        "--threads",
        str(threads),
        "--json",
    ]
    started = time.monotonic()
    child = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    samples = []
    while child.poll() is None:
        rss = rss_bytes(child.pid)
        written = output.read_bytes().count(b"\n") if output.exists() else 0
        if rss:
            samples.append((round(time.monotonic() - started, 2), written, rss))
        time.sleep(every_s)
    stderr = child.stderr.read()
    if child.returncode != 0:
        raise SystemExit(f"the batch failed ({child.returncode}): {stderr[-2000:]}")
    summary = json.loads(stderr.strip().splitlines()[-1])
    return {"samples": samples, "summary": summary, "seconds": round(time.monotonic() - started, 1)}


def judge(samples: list[tuple], lines: int) -> dict:
    """Growth of RSS after the warm-up: the last sample against the first past the warm-up."""
    warm = [s for s in samples if s[1] >= lines // 10]
    steady = [s for s in warm if s[1] < lines]  # before the final summary/teardown
    first, last = steady[0], steady[-1]
    growth = (last[2] - first[2]) / first[2]
    peak = max(s[2] for s in steady)
    curve = [
        next(s for s in samples if s[1] >= mark)
        for mark in range(0, lines, max(lines // 10, 1))
        if any(s[1] >= mark for s in samples)
    ]
    return {
        "rss_after_warmup": first[2],
        "rss_at_end": last[2],
        "peak_after_warmup": peak,
        "growth": round(growth, 4),
        "peak_growth": round((peak - first[2]) / first[2], 4),
        "passed": growth <= LIMIT,
        "curve": curve,
    }


def cpu_name() -> str:
    from edge_et.core.host import cpu_model

    return cpu_model()


def write_report(out: Path, result: dict, verdict: dict, lines: int, threads: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    head = json.dumps(
        {k: v for k, v in result.items() if k != "samples"} | {"verdict": verdict}, indent=2
    )[:-2]
    rows = ",\n".join(f"    {json.dumps(sample)}" for sample in result["samples"])  # one per line
    (out / "soak.json").write_text(f'{head},\n  "samples": [\n{rows}\n  ]\n}}\n')
    mib = 1 << 20
    rows = "\n".join(
        f"| {written} | {seconds} | {rss / mib:.1f} |" for seconds, written, rss in verdict["curve"]
    )
    text = f"""# Soak: one batch process, {lines} lines over {lines} distinct images

`python -m benchmarks.soak_batch --lines {lines} --threads {threads}` on {cpu_name()}
({platform.machine()}, {os.cpu_count()} cores shared with other work: loaded). Bundle: the tiny test bundle, **random weights** (Qwen2-VL + Qwen3 shapes, a few MB),
decoding {json.dumps(DECODING)}; co-resident, one `edge-et run --batch` process, results
journal on. RSS = VmRSS of the child, sampled every 0.5 s by the parent.

| lines written | seconds | RSS (MiB) |
|---|---|---|
{rows}

- RSS after warm-up (first {lines // 10} lines): {verdict["rss_after_warmup"] / mib:.1f} MiB
- RSS at the last line: {verdict["rss_at_end"] / mib:.1f} MiB; peak after warm-up {verdict["peak_after_warmup"] / mib:.1f} MiB
- growth after warm-up: **{verdict["growth"] * 100:+.2f}%** (peak {verdict["peak_growth"] * 100:+.2f}%);
  criterion <= {LIMIT * 100:.0f}%: **{"pass" if verdict["passed"] else "FAIL"}**
- {result["summary"]["answered"]} answered, {result["summary"]["errors"]} errors, {result["summary"]["model_loads"]} model loads,
  {result["summary"]["image_encodes"]} image encodes, {result["seconds"]} s in all
"""
    (out / "soak.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-et-soak-") as scratch:
        folder = Path(scratch)
        result = soak(
            soak_bundle(folder), batch_file(folder, args.lines), folder / "out.jsonl", args.threads
        )
    verdict = judge(result["samples"], args.lines)
    write_report(args.out, result, verdict, args.lines, args.threads)
    print(json.dumps({k: v for k, v in verdict.items() if k != "curve"}))


if __name__ == "__main__":
    main()
