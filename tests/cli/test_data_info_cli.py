"""`edge-et data scenes` and `edge-et info` in an 80-column terminal."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def edge_et(*args: str, columns: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **({"COLUMNS": str(columns)} if columns else {}))
    return subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_data_scenes_writes_the_splits(tmp_path):
    done = edge_et("data", "scenes", "--out", str(tmp_path), "--train", "2", "--heldout", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path / "train.jsonl"), str(tmp_path / "heldout.jsonl")]
    heldout = [json.loads(line) for line in (tmp_path / "heldout.jsonl").read_text().splitlines()]
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(heldout) == 3 and len(train) == 2 and "forms" in train[0]
    assert (tmp_path / heldout[0]["image"]).is_file()


def test_data_scenes_refuses_an_empty_split(tmp_path):
    done = edge_et("data", "scenes", "--out", str(tmp_path), "--heldout", "0")
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_info_keeps_file_names_whole_at_80_columns(tiny_bundle):
    files = json.loads(edge_et("info", str(tiny_bundle), "--json").stdout)["stages"]
    names = [
        stage[part]["file"]
        for stage in files.values()
        for part in ("model", "mmproj")
        if part in stage
    ]
    done = edge_et("info", str(tiny_bundle), columns=80)
    assert done.returncode == 0, done.stderr
    assert all(name in done.stdout for name in names), done.stdout
    assert "…" not in done.stdout and "RANDOM WEIGHTS" in done.stdout
    assert max(len(line.rstrip()) for line in done.stdout.splitlines()) <= 80
    wide = edge_et("info", str(tiny_bundle), columns=200)
    assert "┃ stage" in wide.stdout  # a wide terminal still gets the table
