"""`edge-et pull --list`: the shipped catalog readable at 80 columns, `--json` for machines."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from edge_et.bundle.catalog import list_command, load_catalog
from edge_et.cli.render.catalog import render_catalog, size_text

ROOT = Path(__file__).resolve().parents[2]


def rendered(width: int, pairs=None) -> list[str]:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    render_catalog(console, list_command(Path("no-store")), pairs)
    return console.export_text().splitlines()


def test_every_model_fits_80_columns_with_its_whole_name():
    lines = rendered(80)
    assert max(len(line) for line in lines) <= 80
    names = {line.split()[0] for line in lines if line.strip()}
    assert set(load_catalog().names()) <= names  # none cut short
    header = next(line for line in lines if line.startswith("name "))
    assert header.split() == ["name", "arch", "quant", "size", "license", "pulled"]
    row = next(line for line in lines if line.startswith("qwen2.5-coder-1.5b-instruct-q4_k_m "))
    assert row.split()[1:6] == ["qwen2", "Q4_K_M", "1.1", "GB", "Apache-2.0"]


def test_pairs_are_a_second_small_table_that_fits_too():
    pairs = [
        {
            "name": "paper-0.6b",
            "perception": "llava-extract-qwen3-0.6b",
            "reasoning": "qwen3-1.7b",
            "download": "about 6.5 GB",
        }
    ]
    lines = rendered(80, pairs)
    assert lines[0].startswith("pairs") and max(len(line) for line in lines) <= 80
    assert lines[2].split() == [
        "paper-0.6b",
        "llava-extract-qwen3-0.6b",
        "qwen3-1.7b",
        "about",
        "6.5",
        "GB",
    ]


def test_sizes_read_in_one_short_unit():
    assert [size_text(s) for s in (None, 98_362_432, 1_117_320_768)] == ["-", "98 MB", "1.1 GB"]


def test_the_command_at_80_columns_and_as_json(tmp_path):
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "edge_et.cli.main", "pull", "--list", "--store", str(tmp_path)]
    shown = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and max(map(len, shown.stdout.splitlines())) <= 80
    rows = json.loads(
        subprocess.run(
            command + ["--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        ).stdout
    )
    coder = next(row for row in rows if row["name"] == "qwen2.5-coder-1.5b-instruct-q4_k_m")
    assert (
        coder["size"] == 1_117_320_768
        and coder["pulled"] is False
        and "upstream" in coder["license"]
    )
