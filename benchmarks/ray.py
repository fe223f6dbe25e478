"""Throughput of `edge-et eval` in one process, on a local Ray and on a two-node Ray, same data.

One run, the configurations back to back in rounds (so a change in the machine's load hits
every one alike), each a real `edge-et eval` process over the same questions:

- single process, --threads 1 and --threads 2 (co-resident: both models loaded once);
- `--ray` (a local Ray of 2 CPUs: one perception and one reasoning actor, 1 thread each);
- `--ray 127.0.0.1:PORT`: `ray start --head` and a second `ray start --address` on this
  machine, one CPU each, started and stopped here (tests.helpers.ray_cluster).

Questions/min counts the whole command (start-up, model loads, Ray's start) and, beside it,
the evaluation alone (the report's mode seconds: for Ray that includes the actors' start and
their model loads). Then the paper-scale plan: nodes and hours for a 1,500-question MMStar
evaluation and for extraction-tuning targets of 100,000 pictures, from the per-stage speeds
that benchmarks/results/bench_*.json recorded (benchmarks.ray_plan).

Default bundle: models/bundles/default (the demo: micro perception trained here, the real
pretrained Qwen2.5-Coder-1.5B reasoner, greedy); data: easy-VQA questions (`eval convert`).

    python -m benchmarks.ray [--bundle DIR] [--questions 8] [--max-tokens 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.ray_plan import plan_markdown
from edge_et.runtime.measure import machine_info
from tests.helpers.ray_cluster import two_node_cluster

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
CLI = [sys.executable, "-m", "edge_et.cli.main"]
CONFIGS = {
    "single process, 1 thread": ["--threads", "1"],
    "single process, 2 threads": ["--threads", "2"],
    "local Ray (2 CPUs: 1 perception + 1 reasoning actor, 1 thread each)": [
        "--threads",
        "1",
        "--ray",
        "--ray-cpus",
        "2",
    ],
    "two-node Ray on this machine (1 CPU per node)": ["--threads", "1", "--ray", "{address}"],
}


def make_data(folder: Path, questions: int) -> Path:
    data = folder / "easy-vqa.jsonl"
    subprocess.run(
        [
            *CLI,
            "eval",
            "convert",
            "easy-vqa",
            "--out",
            str(data),
            "--limit",
            str(questions),
            "--seed",
            "0",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return data


def run_config(
    name: str,
    flags: list[str],
    bundle: Path,
    data: Path,
    predictions: Path,
    max_tokens: int,
    env: dict | None = None,
) -> dict:
    command = [
        *CLI,
        "eval",
        "--bundle",
        str(bundle),
        "--data",
        str(data),
        "--seed",
        "0",
        "--max-tokens",
        str(max_tokens),
        "--predictions",
        str(predictions),
        "--json",
        *flags,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
    report = last_json(
        done.stdout, f"{name}: no JSON report on stdout; stderr ends:\n{done.stderr[-1500:]}"
    )
    mode = report["modes"]["extract-think"]
    answers = [
        (row["line"], row.get("answer"), row.get("error"))
        for row in map(json.loads, predictions.read_text().splitlines())
    ]
    return {
        "config": name,
        "wall_s": wall,
        "eval_s": mode["seconds"],
        "questions": report["questions"],
        "accuracy": mode["accuracy"],
        "model_loads": mode["model_loads"],
        "median_s": mode["median_s"],
        "answers": answers,
        "loadavg_after": os.getloadavg(),
    }


def last_json(text: str, failure: str) -> dict:
    """The command's report: the last stdout line that is a JSON object (a Ray node may print
    its own lines on a driver's stdout)."""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(failure + f"\nstdout:\n{text[-1500:]}")


def measure(bundle: Path, questions: int, max_tokens: int, rounds: int, two_node: bool) -> dict:
    runs: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="edge-et-ray-bench-") as scratch:
        folder = Path(scratch)
        data = make_data(folder, questions)
        cluster = two_node_cluster() if two_node else None
        address, cluster_env = cluster.__enter__() if cluster else (None, None)
        try:
            for round_ in range(rounds):
                for number, (name, flags) in enumerate(CONFIGS.items()):
                    on_cluster = "{address}" in flags
                    if on_cluster and address is None:
                        continue
                    flags = [address if flag == "{address}" else flag for flag in flags]
                    print(f"round {round_ + 1}/{rounds}: {name}", file=sys.stderr, flush=True)
                    runs[name].append(
                        run_config(
                            name,
                            flags,
                            bundle,
                            data,
                            folder / f"p{round_}-{number}.jsonl",
                            max_tokens,
                            cluster_env if on_cluster else None,
                        )
                    )
        finally:
            if cluster:
                cluster.__exit__(None, None, None)
    return {name: results for name, results in runs.items() if results}


def summarise(runs: dict) -> list[dict]:
    """Median over rounds per configuration; ratios to the single process with 1 thread."""
    rows = []
    for name, results in runs.items():
        wall = statistics.median(r["wall_s"] for r in results)
        evals = statistics.median(r["eval_s"] for r in results)
        n = results[0]["questions"]
        rows.append(
            {
                "config": name,
                "runs": len(results),
                "questions": n,
                "wall_s": round(wall, 1),
                "eval_s": round(evals, 1),
                "q_per_min_wall": round(60 * n / wall, 2),
                "q_per_min_eval": round(60 * n / evals, 2),
                "wall_range": [
                    round(min(r["wall_s"] for r in results), 1),
                    round(max(r["wall_s"] for r in results), 1),
                ],
                "model_loads": results[0]["model_loads"],
                "accuracy": results[0]["accuracy"],
            }
        )
    base = rows[0]
    for row in rows:
        row["x_wall"] = round(row["q_per_min_wall"] / base["q_per_min_wall"], 2)
        row["x_eval"] = round(row["q_per_min_eval"] / base["q_per_min_eval"], 2)
    return rows


def same_answers(runs: dict) -> bool:
    answers = [r["answers"] for results in runs.values() for r in results]
    return all(a == answers[0] for a in answers)


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Ray: throughput on this machine, and the paper-scale plan",
        "",
        "Produced by `python -m benchmarks.ray` (its docstring says how); raw numbers in "
        "[ray.json](ray.json).",
        "",
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, "
        f"{m['ram_bytes'] / 2**30:.0f} GiB RAM, {m['os']}; Python {m['python']}. Load average "
        f"(1 min) {report['loadavg_start'][0]:.1f} at the start, {report['loadavg_end'][0]:.1f} at "
        "the end: the machine was shared with other work, which every configuration met alike "
        "(rounds interleave them).",
        "",
        f"Bundle `{report['bundle']}` ({report['weights']}); {report['questions']} easy-VQA "
        f"questions, extract-think, reasoning capped at {report['max_tokens']} tokens, greedy; "
        f"{report['rounds']} rounds, medians (min-max). Every run gave the same answers: "
        f"{report['same_answers']}.",
        "",
        "| configuration | questions/min (whole command) | x | questions/min (evaluation) | x "
        "| wall s | model loads |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["table"]:
        lines.append(
            f"| {row['config']} | {row['q_per_min_wall']} | {row['x_wall']} | "
            f"{row['q_per_min_eval']} | {row['x_eval']} | {row['wall_s']} "
            f"({row['wall_range'][0]}-{row['wall_range'][1]}) | {row['model_loads']} |"
        )
    lines += ["", report.get("notes", ""), "", plan_markdown()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "bundles" / "default")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-two-node", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT / "ray.json")
    args = parser.parse_args()
    manifest = json.loads((args.bundle / "bundle.json").read_text())
    random = [role for role in ("perception", "reasoning") if manifest[role].get("random_weights")]
    loadavg_start = os.getloadavg()
    runs = measure(args.bundle, args.questions, args.max_tokens, args.rounds, not args.no_two_node)
    report = {
        "bundle": manifest["name"],
        "weights": f"random: {', '.join(random)}"
        if random
        else "pretrained/trained weights, no random stage",
        "questions": args.questions,
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "machine": machine_info(),
        "loadavg_start": loadavg_start,
        "loadavg_end": os.getloadavg(),
        "table": summarise(runs),
        "same_answers": same_answers(runs),
        "runs": runs,
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
