"""Image-path settings chosen by measurement (edge_et/runtime/image_tuning.py): measured on
the tiny random Qwen2-VL bundle through real llama.cpp, kept in the speed profile, used by the
pipeline, kept when the deadline's speed is measured again."""

import json

import pytest

from edge_et.backends.llama_cpp.loading import PrefillSettings
from edge_et.backends.llama_cpp.settings import default_threads
from edge_et.bundle.manifest import Bundle
from edge_et.core.images import load_image
from edge_et.errors import InputError
from edge_et.runtime import image_tuning
from edge_et.runtime.deadline import device_speed, speed_file
from edge_et.runtime.pipeline import Pipeline


@pytest.fixture(scope="module")
def tuned(tiny_bundle, sample_image, tmp_path_factory):
    """One real tuning run (one trial per candidate) into a fresh cache."""
    root = tmp_path_factory.mktemp("speed-cache")
    bundle = Bundle.load(tiny_bundle)
    record = image_tuning.tune_image_path(bundle, load_image(sample_image), trials=1, root=root)
    return bundle, root, record


@pytest.mark.slow
def test_every_candidate_is_measured_and_the_choice_is_saved(tuned):
    bundle, root, record = tuned
    # half the threads is a candidate only where there are two or more (one core in a pinned
    # test worker: tests/conftest.py)
    vision = len(image_tuning.vision_candidates(default_threads()))
    for part, metric, count in [("vision", "image_encode_s", vision), ("prefill", "prefill_s", 4)]:
        sweep = record[part]
        assert sweep["metric"] == metric and len(sweep["candidates"]) == count
        default = sweep["candidates"][0]
        assert default["settings"]["n_batch"] == 512 and default["ratio_to_default"] == 1.0
        assert all(c["seconds"][0] > 0 for c in sweep["candidates"])
        # the choice is the default unless a candidate beat it in every trial, by the margin
        best = min(sweep["candidates"], key=lambda c: c["ratio_to_default"])
        want = best if best["ratio_to_default"] < 1 - image_tuning.MARGIN else default
        assert sweep["chosen"] == want["settings"]  # one trial: every trial is the median
    assert record["chosen"]["vision_threads"] == record["vision"]["chosen"]["vision_threads"]
    assert image_tuning.tuned_prefill(bundle, root=root) == PrefillSettings.from_json(
        record["chosen"]
    )


@pytest.mark.slow
def test_the_pipeline_opens_the_perception_model_with_the_kept_settings(
    tiny_bundle, sample_image, tmp_path, monkeypatch
):
    monkeypatch.setenv("EDGE_ET_CACHE", str(tmp_path))
    bundle = Bundle.load(tiny_bundle)
    kept = PrefillSettings(
        n_batch=2048, n_ubatch=256, flash_attn=True, vision_flash="off", vision_threads=1
    )
    image_tuning.save_tuning(bundle, {"chosen": kept.to_json()})
    with Pipeline(bundle, residency="swap") as pipeline:
        pipeline.load()
        assert pipeline.model("perception").prefill == kept


def test_a_speed_measured_again_keeps_the_tuning(tiny_bundle, tmp_path, monkeypatch):
    bundle = Bundle.load(tiny_bundle)
    image_tuning.save_tuning(
        bundle, {"chosen": PrefillSettings(flash_attn=True).to_json()}, root=tmp_path
    )
    monkeypatch.setattr("edge_et.runtime.deadline.measure_speed", lambda *a, **k: {"measured": 1})
    profile, source, path = device_speed(bundle, root=tmp_path)
    assert source == "measured" and profile == {"measured": 1}
    assert image_tuning.tuned_prefill(bundle, root=tmp_path) == PrefillSettings(flash_attn=True)
    assert json.loads(path.read_text())["profile"] == {"measured": 1}


def test_damaged_or_foreign_entries_fall_back_to_the_defaults(tiny_bundle, tmp_path):
    bundle = Bundle.load(tiny_bundle)
    assert image_tuning.tuned_prefill(bundle, root=tmp_path) is None  # never tuned
    path = speed_file(bundle, root=tmp_path)
    for damaged in [
        "{not json",
        json.dumps({"format": "other/1", "image_path": {}}),
        json.dumps({"format": "edge-et.speed/1", "image_path": {"chosen": {"n_ubatch": 4096}}}),
        json.dumps({"format": "edge-et.speed/1", "image_path": {"chosen": "fast"}}),
    ]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(damaged)
        assert image_tuning.tuned_prefill(bundle, root=tmp_path) is None
    with pytest.raises(ValueError):
        PrefillSettings.from_json({"vision_flash": "sometimes"})


def test_only_a_llama_cpp_perception_model_with_an_mmproj_is_tuned(
    tiny_bundle, sample_image, tmp_path
):
    bundle = Bundle.load(tiny_bundle)
    with pytest.raises(InputError, match="at least one trial"):
        image_tuning.tune_image_path(bundle, load_image(sample_image), trials=0, root=tmp_path)
    bundle.perception.backend = "onnx"
    with pytest.raises(InputError, match="llama.cpp perception model"):
        image_tuning.tune_image_path(bundle, load_image(sample_image), root=tmp_path)


def test_a_candidate_must_win_every_trial_not_just_the_median():
    default, lucky, steady, close = (
        PrefillSettings(),
        PrefillSettings(flash_attn=True),
        PrefillSettings(n_batch=2048),
        PrefillSettings(n_ubatch=256),
    )
    seconds = {
        default: [212.0, 95.3],
        lucky: [250.9, 50.7],
        steady: [190.0, 85.0],
        close: [205.0, 93.0],
    }
    decided = image_tuning.decide(seconds, default)
    assert decided["ratios"][lucky] < decided["ratios"][steady]  # the lower median...
    assert decided["chosen"] == steady  # ...lost one trial
    del seconds[steady]
    assert image_tuning.decide(seconds, default)["chosen"] == default  # close: under the margin


def test_half_the_threads_is_a_candidate_only_with_two_or_more():
    assert len(image_tuning.vision_candidates(1)) == 2
    assert image_tuning.vision_candidates(4)[-1].vision_threads == 2
