"""Bench defaults that fit the run asked for, and a progress ETA weighted by each step's work.
Fakes only: the command's wiring is checked by catching what it would hand the bench."""

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from edge_et.bench.run import bench_steps, step_weights
from edge_et.bench.settings import BenchSettings, curve_for, fitted_defaults
from edge_et.cli import bench as bench_command_module
from edge_et.cli.main import app


def test_the_default_run_keeps_the_historical_curve():
    assert fitted_defaults(think_tokens=256) == {
        "trials": 5,
        "warmup": 1,
        "budgets": (0, 256, 1024, 4096),
        "curve_trials": 3,
    }


def test_a_short_run_gets_a_short_curve_of_one_round():
    fitted = fitted_defaults(think_tokens=8, trials=1)
    assert fitted == {"trials": 1, "warmup": 1, "budgets": (0, 8, 32, 128), "curve_trials": 1}
    assert curve_for(0) == ()


def test_quick_is_one_trial_no_warmup_and_two_budgets_but_flags_win():
    assert fitted_defaults(think_tokens=64, quick=True) == {
        "trials": 1,
        "warmup": 0,
        "budgets": (0, 64),
        "curve_trials": 1,
    }
    given = fitted_defaults(think_tokens=64, quick=True, trials=3, budgets=(5,), curve_trials=2)
    assert (given["trials"], given["budgets"], given["curve_trials"]) == (3, (5,), 2)


@pytest.mark.parametrize(
    "settings",
    [
        BenchSettings(),
        BenchSettings(bandwidth_mib=0, bare=False, direct=False, budgets=()),
        BenchSettings(trials=1, warmup=0, budgets=(0, 8, 8, 32), curve_trials=2),
    ],
)
def test_one_weight_per_progress_line_and_curve_runs_weigh_their_budget(settings):
    weights = step_weights(settings)
    assert len(weights) == bench_steps(settings)
    if settings.budgets:
        curve = weights[-len(dict.fromkeys(settings.budgets)) :]
        assert max(curve) == max(settings.budgets) + settings.answer_tokens


def test_the_bar_advances_by_the_work_done(monkeypatch):
    advanced = []
    monkeypatch.setattr(
        bench_command_module.Progress,
        "advance",
        lambda self, task, amount=1: advanced.append(amount),
    )
    with bench_command_module._progress(Console(file=io.StringIO()), [10.0, 30.0, 60.0]) as step:
        for line in ("a", "b", "c"):
            step(line)
    assert advanced == [10.0, 30.0]  # each line finishes the step before it


def test_the_command_hands_the_fitted_defaults_to_the_bench(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(bench_command_module, "bench_command", lambda **kw: seen.update(kw))
    args = ["bench", "--bundle", str(tmp_path), "--trials", "1", "--think-tokens", "8"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert (seen["trials"], seen["budgets"], seen["curve_trials"]) == (1, (0, 8, 32, 128), 1)
    CliRunner().invoke(app, ["bench", "--bundle", str(tmp_path), "--quick", "--budgets", "none"])
    assert (seen["trials"], seen["warmup"], seen["budgets"]) == (1, 0, ())
