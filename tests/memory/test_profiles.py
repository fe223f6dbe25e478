"""Device profiles: the table's content, its arithmetic (budget, predicted speed) with fakes, and
a plan with its reasons for every profile."""

import pytest

from edge_et.errors import InputError
from edge_et.memory.footprint import StageFootprint
from edge_et.memory.probes import MiB
from edge_et.memory.profiles import GB, get_profile, load_profiles, profile_budget
from edge_et.memory.scheduler import plan
from edge_et.runtime.prediction import predict_rates, predict_speed_profile, scale_factors

PROFILES = load_profiles()
ASKED_FOR = (
    "iphone-15-pro",
    "iphone-15-pro-increased-memory",
    "iphone-13-pro",
    "iphone-13-pro-increased-memory",
    "iphone-6gb",
    "android-8gb",
    "galaxy-s22",
    "raspberry-pi-5-8gb",
    "laptop-8gb",
    "laptop-16gb",
    "macbook-m2-16gb",
)


def test_the_table_has_the_devices_the_issue_names_each_figure_with_a_source():
    assert set(ASKED_FOR) <= set(PROFILES)
    for p in PROFILES.values():
        for source in (p.app_memory_source, p.bandwidth_source, p.cores_source):
            assert source.startswith(("http", "issue 19", "derived", "assumed", "same page")), (
                source
            )
        assert all(d.source and d.tok_s > 0 for d in p.published_decode)


def test_the_issue_figures_are_the_table_figures():
    mem = {name: PROFILES[name].app_memory_bytes / GB for name in ASKED_FOR}
    assert (mem["iphone-13-pro"], mem["iphone-13-pro-increased-memory"]) == (3.12, 4.20)
    assert (mem["iphone-15-pro"], mem["iphone-15-pro-increased-memory"]) == (3.0, 6.0)
    assert mem["iphone-6gb"] == 3.0 and mem["android-8gb"] == 4.0
    decode = {
        n: [d.tok_s for d in PROFILES[n].published_decode] for n in ("galaxy-s22", "iphone-15-pro")
    }
    assert decode == {"galaxy-s22": [59], "iphone-15-pro": [18]}


def test_budget_is_the_app_memory_and_names_the_profile():
    budget = profile_budget(PROFILES["iphone-15-pro-increased-memory"])
    assert budget.bytes == 6 * 10**9
    assert "iphone-15-pro-increased-memory" in budget.source and "3 to 6 GB" in budget.source


def test_unknown_profile_and_broken_table_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="unknown device profile 'pixel'.*galaxy-s22"):
        get_profile("pixel")
    bad = tmp_path / "p.toml"
    bad.write_text(
        '[x]\ndescription = "x"\nos = "ios"\ntarget = "ios"\nram_gb = 4\n'
        'app_memory_gb = 5\napp_memory_source = "a"\nbandwidth_gbs = 1\n'
        'bandwidth_source = "b"\ncores = 1\ncores_source = "c"\n'
    )
    with pytest.raises(InputError, match="app memory must be within the RAM"):
        load_profiles(bad)
    bad.write_text("[x]\nos = 'ios'\n")
    with pytest.raises(InputError, match="'description' is missing"):
        load_profiles(bad)


def _stage(role, weights_mib):
    def estimate(n_ctx, kv_type):
        kv = int(n_ctx * 0.1 * MiB * (0.53 if kv_type == "q8_0" else 1))
        return StageFootprint(
            role=role,
            n_ctx=n_ctx,
            kv_type=kv_type,
            flash_attn=False,
            weights_bytes=weights_mib * MiB,
            kv_bytes=kv,
            compute_bytes=50 * MiB,
            overhead_bytes=10 * MiB,
            n_params=weights_mib * MiB * 2,
        )

    return estimate


@pytest.mark.parametrize("name", ASKED_FOR)
def test_every_profile_gives_a_decision_with_reasons(name):
    # A 0.5 GB VLM + a 2.3 GB reasoner at 4096: together 3.3 GB, the reasoner alone 2.8 GB.
    estimators = {"perception": _stage("perception", 500), "reasoning": _stage("reasoning", 2200)}
    budget = profile_budget(PROFILES[name])
    result = plan(
        estimators,
        {"perception": 2048, "reasoning": 4096},
        {"perception": 1024, "reasoning": 2048},
        budget,
        60 * MiB,
    )
    assert result.reason
    assert name in result.to_dict()["budget_source"]
    expected = (
        "refuse"
        if budget.bytes < 2.75 * 2**30
        else "swap"
        if budget.bytes < 3.5 * 2**30
        else "co-resident"
    )
    assert result.decision == expected, (name, result.reason)


def test_prediction_scales_decode_by_bandwidth_and_prefill_by_cores():
    galaxy = PROFILES["galaxy-s22"]  # 51.2 GB/s, 8 cores
    factors = scale_factors(galaxy, here_bandwidth=12.8e9, here_cores=2)
    assert factors == {"bandwidth": 4.0, "compute": 4.0}
    rates = predict_rates(
        {
            "decode_tok_s": 5.0,
            "prefill_tok_s": 40.0,
            "image_encode_s": 2.0,
            "load_s": 1.5,
            "prompt_tokens": 30,
        },
        factors,
    )
    assert rates == {
        "decode_tok_s": 20.0,
        "prefill_tok_s": 160.0,
        "image_encode_s": 0.5,
        "load_s": 1.5,
        "prompt_tokens": 30,
    }
    with pytest.raises(ValueError):
        scale_factors(galaxy, here_bandwidth=0, here_cores=2)


def test_a_predicted_speed_profile_is_labelled_and_reads_the_profiles_bandwidth():
    measured = {
        "perception": {"decode_tok_s": 10.0, "prefill_tok_s": 100.0, "load_s": 1.0},
        "reasoning": {"decode_tok_s": 4.0, "prefill_tok_s": 50.0, "load_s": 2.0},
        "read_bytes_per_s": 17.1e9,
        "measured_s": 9.0,
    }
    predicted, label = predict_speed_profile(measured, PROFILES["iphone-15-pro"], here_cores=6)
    assert predicted["reasoning"]["decode_tok_s"] == pytest.approx(4.0 * 51.2 / 17.1)
    assert predicted["reasoning"]["prefill_tok_s"] == 50.0  # 6 cores here and there
    assert predicted["read_bytes_per_s"] == 51.2e9
    assert label["prediction_for"] == "iphone-15-pro" and label["method"].startswith("PREDICTION")
    assert label["published_decode"][0]["tok_s"] == 18
