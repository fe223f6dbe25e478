"""`edge-et bench` and `edge-et run --deadline` as a user types them: real process, tiny bundle.

Behaviour only (files written, fields present, the chosen budget reported); never speed.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "How many circles are there?\nA. 1\nB. 2\nC. 3\nD. 4"


def edge_et(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_bench_command_writes_json_and_plot(tiny_bundle, sample_image, tmp_path):
    report_path, plot_path = tmp_path / "bench.json", tmp_path / "bench.png"
    done = edge_et(
        "bench",
        "--bundle",
        str(tiny_bundle),
        "--image",
        str(sample_image),
        "--trials",
        "2",
        "--warmup",
        "0",
        "--extract-tokens",
        "5",
        "--think-tokens",
        "4",
        "--answer-tokens",
        "2",
        "--direct-tokens",
        "2",
        "--budgets",
        "0,3",
        "--curve-trials",
        "1",
        "--bandwidth-mib",
        "8",
        "--out",
        str(report_path),
        "--plot",
        str(plot_path),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed == json.loads(report_path.read_text())
    assert plot_path.read_bytes()[:4] == b"\x89PNG"
    assert printed["settings"]["trials"] == 2 and [r["budget"] for r in printed["curve"]] == [0, 3]
    assert printed["ratios"]["overhead"]["think"]["comparable"]
    assert printed["roofline"]["think"]["pct_of_limit"] > 0
    for trial in printed["trials"]:
        assert trial["edge"]["extract"]["tokens"] == 5 and trial["edge"]["think"]["tokens"] == 4 + 2


def test_bench_option_mistakes_are_one_line(tiny_bundle, tmp_path):
    done = edge_et("bench", "--bundle", str(tiny_bundle), "--budgets", "0,abc")
    assert done.returncode == 2 and "--budgets" in done.stderr and "Traceback" not in done.stderr
    done = edge_et("bench", "--bundle", str(tiny_bundle), "--images", str(tmp_path))
    assert done.returncode == 2 and "no pictures" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_run_deadline_reports_the_budget_it_chose(tiny_bundle, sample_image, tmp_path):
    env = {"EDGE_ET_CACHE": str(tmp_path / "cache")}
    args = (
        "run",
        "--bundle",
        str(tiny_bundle),
        "--image",
        str(sample_image),
        "--question",
        QUESTION,
        "--seed",
        "0",
        "--deadline",
        "30",
        "--json",
    )
    first = edge_et(*args, env=env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    chosen = result["deadline"]
    assert (
        chosen["deadline_s"] == 30
        and chosen["budget"] >= 0
        and chosen["speed"]["source"] == "measured"
    )
    assert f"think budget {chosen['budget']}" in first.stderr
    think = result["stages"]["think"]
    if chosen["budget"] == 0:  # thinking switched off by the template: no thought at all
        assert not think["think_tokens"]
    else:
        assert think["think_tokens"] <= max(2, chosen["budget"])
    second = json.loads(edge_et(*args, env=env).stdout)
    assert second["deadline"]["speed"]["source"] == "cache"
    assert second["deadline"]["budget"] == chosen["budget"]


def test_deadline_conflicts_are_one_line(tiny_bundle, sample_image):
    done = edge_et(
        "run",
        "--bundle",
        str(tiny_bundle),
        "--image",
        str(sample_image),
        "--question",
        QUESTION,
        "--deadline",
        "10",
        "--think-budget",
        "5",
    )
    assert done.returncode == 2 and "drop --think-budget" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_run_deadline_uses_the_cached_speed_and_caps_the_thought(
    tiny_bundle, sample_image, tmp_path
):
    from edge_et.bundle.manifest import Bundle
    from tests.helpers.speed import cache_profile

    cache_profile(Bundle.load(tiny_bundle), tmp_path)  # 100 tok/s: a generous budget fits 60 s
    done = edge_et(
        "run",
        "--bundle",
        str(tiny_bundle),
        "--image",
        str(sample_image),
        "--question",
        QUESTION,
        "--seed",
        "0",
        "--deadline",
        "60",
        "--json",
        env={"EDGE_ET_CACHE": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    budget = result["deadline"]["budget"]
    assert result["deadline"]["speed"]["source"] == "cache" and budget > 0
    assert result["deadline"]["expected_s"] <= 0.9 * 60
    assert 0 < result["stages"]["think"]["think_tokens"] <= budget
