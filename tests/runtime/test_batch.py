"""Batch runs: input order kept, bad lines isolated, each model loaded once, each picture encoded once."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from edge_et.bundle.manifest import Bundle
from edge_et.errors import EdgeEtError
from edge_et.runtime.batch import read_batch, run_batch
from edge_et.runtime.pipeline import Pipeline, RunOptions

ROOT = Path(__file__).resolve().parents[2]
Q = "What is left of the square?\nA. circle\nB. star"


@pytest.fixture()
def batch_file(tmp_path, sample_image):
    Image.new("RGB", (80, 60), (200, 30, 30)).save(tmp_path / "red.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    lines = [
        {"image": str(sample_image), "question": Q, "id": "a"},
        {"image": "red.png", "question": Q, "id": "b"},  # relative to the JSONL folder
        "this is not json",
        {"image": str(sample_image), "question": "How many shapes?", "id": "c"},
        {"image": "broken.png", "question": Q, "id": "d"},
        {"image": "red.png", "question": "What color is it?", "hint": "the colors", "id": "e"},
        {"question": Q, "id": "f"},
        {"image": str(sample_image), "question": "Any text?", "id": "g"},
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    )
    return path


@pytest.mark.parametrize("residency", ["swap", "co-resident"])
def test_batch_loads_each_model_once_and_encodes_each_picture_once(
    tiny_bundle, batch_file, residency
):
    records = []
    options = RunOptions(seed=4, think_budget=8, answer_budget=4)
    with Pipeline(Bundle.load(tiny_bundle), residency=residency) as pipeline:
        summary = run_batch(pipeline, read_batch(batch_file), options, records.append)
    assert [r["index"] for r in records] == list(range(8))
    assert [r["id"] for r in records] == ["a", "b", None, "c", "d", "e", "f", "g"]
    failed = {r["index"]: r["error"] for r in records if "error" in r}
    assert set(failed) == {2, 4, 6}
    assert "not valid JSON" in failed[2] and "cannot read image" in failed[4]
    assert "needs string fields" in failed[6]
    assert summary.model_loads == 2
    # broken.png never decodes: not a picture, so neither encoded nor counted as one
    assert summary.image_encodes == summary.distinct_images == 2
    assert summary.images_decoded == 2 and summary.errors == 3 and summary.answered == 5
    answered = [r for r in records if "error" not in r]
    assert all(r["mode"] == "extract-think" and "think" in r["stages"] for r in answered)
    assert next(r for r in records if r["id"] == "e")["hint"] == "the colors"
    assert sum(not r["stages"]["extract"]["image_cached"] for r in answered) == 2


def test_cli_batch_writes_jsonl_and_a_summary(tiny_bundle, batch_file, tmp_path):
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "run",
            "--bundle",
            str(tiny_bundle),
            "--batch",
            str(batch_file),
            "--output",
            str(out),
            "--residency",
            "swap",
            "--think-budget",
            "8",
            "--answer-budget",
            "4",
            "--seed",
            "1",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 8
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    assert summary["model_loads"] == 2 and summary["image_encodes"] == 2 and summary["lines"] == 8


def test_empty_or_missing_batch_file_is_one_line(tiny_bundle, tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    for path, fragment in (
        (tmp_path / "empty.jsonl", "has no lines"),
        (tmp_path / "nope.jsonl", "cannot read"),
    ):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_et.cli.main",
                "run",
                "--bundle",
                str(tiny_bundle),
                "--batch",
                str(path),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and fragment in done.stderr and "Traceback" not in done.stderr


def test_a_line_whose_image_path_the_system_refuses_is_that_line_s_error(tmp_path):
    lines = [
        {"image": "x" * 10_000, "question": Q},
        {"image": "a\0b.png", "question": Q},
        {"image": "red.png", "question": Q},
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    items = read_batch(path)
    assert "too long" in items[0].error and "NUL character" in items[1].error
    assert all(len(item.error) < 300 and item.question == Q for item in items[:2])
    assert items[2].error is None and items[2].image == tmp_path / "red.png"


def test_a_batch_file_name_the_system_refuses_is_one_short_line(tmp_path):
    with pytest.raises(EdgeEtError, match="cannot read batch file .* too long") as caught:
        read_batch(tmp_path / ("x" * 10_000))
    assert len(str(caught.value)) < 300
