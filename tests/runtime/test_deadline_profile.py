"""`run --deadline --device-profile`: the budget is chosen from a labelled prediction for that
device (this machine's speed scaled by bandwidth and cores), not from this machine's speed."""

from edge_et.bundle.manifest import Bundle
from edge_et.runtime.deadline import choose_think_budget, describe_choice
from tests.helpers.speed import cache_profile


def test_a_faster_profile_gets_a_larger_budget_and_says_it_is_a_prediction(tiny_bundle, tmp_path):
    bundle = Bundle.load(tiny_bundle)
    cache_profile(bundle, tmp_path)  # measured here: 100 tok/s at 10 GB/s

    def pick(profile):
        return choose_think_budget(
            bundle,
            20.0,
            cache=tmp_path,
            extract_tokens=64,
            answer_tokens=32,
            max_budget=8192,
            device_profile=profile,
        )

    here, _ = pick(None)
    pi, pi_info = pick("raspberry-pi-5-8gb")  # 17.1 GB/s
    galaxy, galaxy_info = pick("galaxy-s22")  # 51.2 GB/s
    assert here < pi < galaxy
    label = galaxy_info["speed"]["prediction"]
    assert label["prediction_for"] == "galaxy-s22" and label["factors"]["bandwidth"] == 5.12
    assert describe_choice(galaxy_info).startswith("PREDICTED for galaxy-s22")
    assert "prediction" not in pick(None)[1]["speed"]
