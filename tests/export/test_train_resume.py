"""A stopped `export train` run continues from its last checkpoint (export.micro.resume), and
the trainer reads the varied scene stream through the model's own resize."""

import json

import pytest

from edge_et.errors import EdgeEtError

SMALL = {
    "form": "extract",
    "seed": 0,
    "steps": 4,
    "batch": 2,
    "lr": 3e-3,
    "warmup": 1,
    "config": "test",
    "threads": 1,
    "log_every": 1,
    "eval_every": 4,
    "eval_size": 2,
    "checkpoint_every": 2,
}


class Stop(Exception):
    pass


def stop_after(step: int):
    def log(line: str) -> None:
        if json.loads(line)["step"] == step:
            raise Stop

    return log


def losses(out) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_stopped_run_resumes_at_its_checkpoint_and_ends_like_an_unstopped_one(tmp_path):
    from export.micro.train import train

    whole = train(out=tmp_path / "whole", log=lambda line: None, scenes="mix", **SMALL)
    with pytest.raises(Stop):
        train(out=tmp_path / "cut", log=stop_after(3), scenes="mix", **SMALL)
    assert (tmp_path / "cut" / "resume" / "state.pt").is_file()
    steps_seen = []
    resumed = train(
        out=tmp_path / "cut",
        log=lambda line: steps_seen.append(json.loads(line)["step"]),
        scenes="mix",
        **SMALL,
    )
    assert steps_seen == [3, 4]  # continued after the step-2 checkpoint
    assert not (tmp_path / "cut" / "resume").exists()
    assert losses(tmp_path / "cut") == pytest.approx(losses(tmp_path / "whole"), abs=2e-3)
    assert resumed["heldout_loss"] == pytest.approx(whole["heldout_loss"], abs=2e-3)
    assert resumed["data"].endswith("(mix)")


def test_a_checkpoint_of_other_settings_is_refused(tmp_path):
    from export.micro.train import train

    with pytest.raises(Stop):
        train(out=tmp_path, log=stop_after(3), **SMALL)
    with pytest.raises(EdgeEtError, match="other settings"):
        train(out=tmp_path, log=lambda line: None, **{**SMALL, "lr": 1e-3})


def test_an_unknown_scene_stream_is_one_user_error(tmp_path):
    from export.micro.train import train

    with pytest.raises(EdgeEtError, match="unknown --scenes"):
        train(out=tmp_path, log=lambda line: None, scenes="photos", **SMALL)


@pytest.mark.parametrize("form", ["direct", "direct-text"])
def test_direct_forms_log_the_letters_accuracy_beside_the_loss(tmp_path, form):
    from export.micro.train import train

    summary = train(
        out=tmp_path,
        log=lambda line: None,
        **{**SMALL, "form": form, "steps": 2, "eval_every": 2, "eval_size": 4},
    )
    assert 0.0 <= summary["heldout_letter_acc"] <= 1.0
    assert "heldout_letter_acc" in json.loads(
        (tmp_path / "train_log.jsonl").read_text().splitlines()[-1]
    )


def test_the_answer_with_text_target_states_the_answer_then_names_the_letter():
    from export.scenes.forms import example, training_pair

    ex = example(1, 5)
    prompt, target = training_pair(ex, "direct-text")
    assert prompt == training_pair(ex, "direct")[0]
    assert target == f"{ex.question.statement} Answer: {ex.question.answer}"


@pytest.mark.slow
def test_a_time_limit_pauses_at_a_log_step_and_the_rerun_ends_like_an_unpaused_run(tmp_path):
    # benchmarks.perception_sweep --max-minutes: training in chunks of bounded time (issue 30).
    import time

    from export.micro.resume import Paused
    from export.micro.train import train

    settings = {**SMALL, "log_every": 2, "checkpoint_every": 0}  # no periodic checkpoints
    whole = train(out=tmp_path / "whole", log=lambda line: None, **settings)
    with pytest.raises(Paused) as paused:
        train(out=tmp_path / "cut", log=lambda line: None, stop_at=time.monotonic() - 1, **settings)
    assert paused.value.step == 2 and (tmp_path / "cut" / "resume" / "state.pt").is_file()
    steps_seen = []
    resumed = train(
        out=tmp_path / "cut",
        log=lambda line: steps_seen.append(json.loads(line)["step"]),
        stop_at=time.monotonic() + 3600,
        **settings,
    )
    assert steps_seen == [4]
    assert losses(tmp_path / "cut") == pytest.approx(losses(tmp_path / "whole"), abs=2e-3)
    assert resumed["heldout_loss"] == pytest.approx(whole["heldout_loss"], abs=2e-3)
