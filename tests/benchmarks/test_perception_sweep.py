"""benchmarks/perception_sweep.py: the queue's bookkeeping (no model is trained here)."""

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import perception_sweep

RECORDED = Path(perception_sweep.__file__).parent / "results" / "perception_sweep.json"


@pytest.fixture
def results(tmp_path, monkeypatch):
    shutil.copy(RECORDED, tmp_path / "perception_sweep.json")
    monkeypatch.setattr(perception_sweep, "RESULTS", tmp_path)
    monkeypatch.setattr(perception_sweep, "SWEEP", tmp_path / "sweep")  # no trained model anywhere
    return tmp_path


def test_a_run_scored_at_the_limit_is_skipped_without_its_model(results):
    # The micro runs' folders are not here: a run that needed them would start training, which
    # the spent time limit turns into "paused" (exit 3) at once.
    perception_sweep.main(
        ["--only", "micro-direct-classic", "--limit", "60", "--max-minutes", "1e-9"]
    )
    text = (results / "perception_sweep.md").read_text()
    assert (
        "| micro-direct-classic | direct | micro | classic | classic | 60 | correct 27% [17%-39%] | - |"
        in text
    )


def test_past_the_time_limit_nothing_new_starts_and_the_exit_says_paused(results):
    recorded = json.loads((results / "perception_sweep.json").read_text())
    recorded.pop("small-extract-mix", None)  # not begun, whatever the recorded sweep has done
    (results / "perception_sweep.json").write_text(json.dumps(recorded))
    with pytest.raises(SystemExit) as stopped:
        perception_sweep.main(
            ["--only", "small-extract-mix", "--limit", "60", "--max-minutes", "1e-9"]
        )
    assert stopped.value.code == 3
    assert not (results / "sweep").exists()  # no training began
    assert (
        json.loads((results / "perception_sweep.json").read_text())["small-extract-mix"]["form"]
        == "extract"
    )


def test_base_runs_wait_to_be_named():
    assert all(name in perception_sweep.RUNS for name in perception_sweep.ON_REQUEST)
    assert all(perception_sweep.RUNS[name][1] == "base" for name in perception_sweep.ON_REQUEST)


def test_a_time_limit_must_be_positive(results):
    with pytest.raises(SystemExit) as refused:
        perception_sweep.main(["--max-minutes", "0"])
    assert refused.value.code == 2
