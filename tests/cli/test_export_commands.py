"""`edge-et export demo` and `edge-et export micro-eval`: the commands that replaced
`python -m export.demo` and `python -m export.micro.eval` (cheap checks; the demo bundle
itself is built by tests/export/test_train_micro.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MICRO_EXTRACT = ROOT / "models" / "micro" / "extract"


def edge_et(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_and_micro_eval_are_export_commands():
    done = edge_et("export", "--help")
    assert done.returncode == 0, done.stderr
    assert "demo" in done.stdout and "micro-eval" in done.stdout
    demo = edge_et("export", "demo", "--help")
    assert demo.returncode == 0 and "--sample" in demo.stdout and "--out" in demo.stdout


def test_micro_eval_rejects_an_unknown_form_before_loading_anything(tmp_path):
    done = edge_et("export", "micro-eval", "--bundle", str(tmp_path), "--form", "poem", "--json")
    assert done.returncode != 0
    assert "unknown form 'poem'" in done.stderr


@pytest.mark.skipif(
    not (MICRO_EXTRACT / "bundle.json").is_file(),
    reason="the committed micro extract model is missing",
)
def test_micro_eval_scores_the_committed_model_as_json():
    done = edge_et(
        "export",
        "micro-eval",
        "--bundle",
        str(MICRO_EXTRACT),
        "--form",
        "extract",
        "--limit",
        "2",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["form"] == "extract" and report["examples"] == 2
    assert 0.0 <= report["sentence_recall"] <= 1.0
