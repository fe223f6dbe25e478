"""eval --predictions --resume: a stopped evaluation continues to the report an uninterrupted one gives."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from edge_et.bundle.manifest import Bundle
from edge_et.eval.resumable import EvalRun
from edge_et.eval.run import read_eval_file
from edge_et.runtime.pipeline import Pipeline, RunOptions
from tests.helpers.short_bundle import short_bundle

ROOT = Path(__file__).resolve().parents[2]
MODES = ["extract-think", "direct"]


@pytest.fixture(scope="module")
def setup(tiny_bundle, tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval-resume")
    rows = []
    for i in range(4):
        Image.new("RGB", (48 + 4 * i, 48), (60 * i, 90, 30)).save(folder / f"{i}.png")
        rows.append(
            {
                "id": f"q{i}",
                "image": f"{i}.png",
                "question": f"Which colour {i}?",
                "options": ["red", "green", "blue"],
                "answer": "ABC"[i % 3],
            }
        )
    data = folder / "eval.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return short_bundle(tiny_bundle, folder), data


def evaluate(bundle, data, predictions, *, resume=False, stop=lambda asked: False):
    """One evaluation in swap residency: its report, answers given and pictures encoded."""
    asked = []
    with Pipeline(Bundle.load(bundle), residency="swap", n_threads=1) as pipeline:
        run = EvalRun(
            pipeline, read_eval_file(data), MODES, RunOptions(), predictions, seed=5, resume=resume
        )
        report = run.run(lambda: asked.append(1), stop=lambda: stop(len(asked)))
        return report, len(asked), pipeline.image_encodes


def lines_in(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def rows(path: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k not in ("stages", "peak_rss_bytes")}
        for line in path.read_text().splitlines()
    ]


def scores(report) -> dict:
    return {
        mode: (r.overall.to_dict(), [(row.id, row.letter, row.error) for row in r.rows])
        for mode, r in report.modes.items()
    }


def test_stopped_evaluation_resumes_to_the_same_report_and_predictions(setup, tmp_path):
    bundle, data = setup
    reference, asked, _ = evaluate(bundle, data, tmp_path / "reference.jsonl")
    assert asked == 8
    predictions = tmp_path / "pred.jsonl"
    side = predictions.with_name("pred.jsonl.extractions.jsonl")
    evaluate(bundle, data, predictions, resume=True, stop=lambda asked: asked >= 1)  # in `direct`
    assert lines_in(predictions) == 1
    # then in extract-think's extraction pass, after two extractions
    evaluate(bundle, data, predictions, resume=True, stop=lambda asked: lines_in(side) >= 2)
    assert lines_in(predictions) == 4 and lines_in(side) == 2
    resumed, asked, encodes = evaluate(bundle, data, predictions, resume=True)
    assert asked == 4 and encodes == 2  # only the missing answers; only the missing extractions
    assert scores(resumed) == scores(reference)
    assert rows(predictions) == rows(tmp_path / "reference.jsonl")
    assert not side.exists()


def test_resume_against_a_changed_data_file_or_without_predictions_is_one_line(setup, tmp_path):
    bundle, data = setup
    changed = tmp_path / "eval.jsonl"
    changed.write_text(data.read_text())
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes((data.parent / f"{i}.png").read_bytes())
    predictions = tmp_path / "pred.jsonl"
    evaluate(bundle, changed, predictions, stop=lambda asked: asked >= 1)
    changed.write_text(data.read_text().replace("Which colour 3?", "Which colour three?"))
    for extra, fragment in (
        (["--predictions", str(predictions)], "changed since"),
        ([], "needs --predictions"),
    ):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_et.cli.main",
                "eval",
                "--bundle",
                str(bundle),
                "--data",
                str(changed),
                "--resume",
                *extra,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2 and fragment in done.stderr and "Traceback" not in done.stderr


def test_resume_with_a_changed_seed_is_refused_in_one_line(setup, tmp_path):
    """eval.md promises it; before, `.resume.json` stored a null seed and any --seed resumed."""
    bundle, data = setup
    predictions = tmp_path / "pred.jsonl"

    def cli(seed: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_et.cli.main",
                "eval",
                "--bundle",
                str(bundle),
                "--data",
                str(data),
                "--mode",
                "direct",
                "--limit",
                "1",
                "--predictions",
                str(predictions),
                "--seed",
                str(seed),
                "--resume",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    evaluate(bundle, data, predictions, stop=lambda asked: asked >= 1)  # seed 5
    refused = cli(6)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "seed 5 -> 6" in errors[0]
    assert cli(5).returncode == 0
