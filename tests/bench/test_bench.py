"""`edge-et bench` and `--deadline` on the tiny bundle: behaviour, never speed.

Timings on shared CI machines are noise, so these tests check that every field is there,
ratios are computed, fixed lengths are exact (EOS ignored), files are written and the
deadline logic is monotone, with a synthetic speed profile where numbers matter.
"""

import io
import json

import pytest
from rich.console import Console

from edge_et.backends.stage_run import StageRequest
from edge_et.bundle.manifest import Bundle
from edge_et.cli.bench import bench_command, bench_images, parse_budgets
from edge_et.cli.render.bench import MARKDOWN_HEADER, markdown_rows, plot_report
from edge_et.core.decoding import Sampling
from edge_et.errors import EdgeEtError
from edge_et.runtime.measure import edge_stage
from tests.helpers.fakes import EOS, ScriptedModel
from tests.helpers.speed import cache_profile

SMALL = dict(
    trials=2,
    warmup=0,
    extract_tokens=6,
    think_tokens=6,
    answer_tokens=3,
    direct_tokens=3,
    budgets=(0, 4),
    curve_trials=1,
    bandwidth_mib=8,
)
STAGE_METRICS = (
    "load_s",
    "image_encode_s",
    "prefill_tok_s",
    "decode_tok_s",
    "ttft_s",
    "e2e_s",
    "peak_rss_bytes",
)


@pytest.fixture(scope="module")
def bench_run(tiny_bundle, sample_image, tmp_path_factory):
    """One small bench through the command's own function: (report, saved JSON path, output)."""
    saved = tmp_path_factory.mktemp("bench") / "report.json"
    shown, steps = io.StringIO(), io.StringIO()
    report = bench_command(
        bundle=tiny_bundle,
        image=sample_image,
        images=None,
        out=saved,
        plot=None,
        as_json=False,
        console=Console(file=shown, width=200),
        err=Console(file=steps, width=200),
        **SMALL,
    )
    return report, saved, shown.getvalue(), steps.getvalue()


def test_every_stage_reports_every_statistic(bench_run):
    report, _, _, _ = bench_run
    assert set(report["stages"]) == {"extract", "think", "direct"}
    for name, metrics in report["stages"].items():
        for key in STAGE_METRICS:
            if key == "image_encode_s" and name == "think":
                assert metrics[key] is None  # the reasoning stage has no image
                continue
            summary = metrics[key]
            assert set(summary) == {"median", "min", "max", "n"}, (name, key)
            assert summary["min"] <= summary["median"] <= summary["max"]
    assert set(report["bare"]) == {"extract", "think"}
    assert report["machine"]["cpu"] and report["machine"]["llama_cpp_python"]
    assert len(report["trials"]) == SMALL["trials"]


def test_ratios_and_limits_are_computed(bench_run):
    report, _, _, _ = bench_run
    for stage in ("extract", "think"):
        overhead = report["ratios"]["overhead"][stage]
        assert overhead["comparable"] and overhead["e2e"] > 0 and overhead["decode"] > 0
        assert overhead["goal"] == 1.03 and isinstance(overhead["meets_goal"], bool)
    price = report["ratios"]["direct_price"]
    assert price["resident"] > 0 and price["with_loads"] > 0
    bandwidth = report["bandwidth"]
    assert (
        bandwidth["read_bytes_per_s_1_thread"] > 0 and bandwidth["read_bytes_per_s_all_threads"] > 0
    )
    for stage in ("extract", "think", "direct"):
        roof = report["roofline"][stage]
        assert roof["bytes_per_token"] >= roof["weights_read_bytes"] > 0
        assert roof["kv_read_bytes"] > 0 and roof["pct_of_limit"] > 0


def test_lengths_are_exact_because_eos_is_ignored(bench_run):
    report, _, _, _ = bench_run
    # Thinking reasoner: the thought is exactly its budget, then the answer budget.
    want = {"extract": 6, "think": 6 + 3, "direct": 3}
    for trial in report["trials"]:
        for side in ("edge", "bare"):
            for stage, run in trial[side].items():
                assert run["tokens"] == run["requested"] == want[stage], (side, stage)
    curve = {row["budget"]: row for row in report["curve"]}
    assert set(curve) == {0, 4}
    assert curve[0]["requested"] == 3 and curve[4]["requested"] == 4 + 3
    for row in curve.values():
        assert row["tokens"]["min"] == row["tokens"]["max"] == row["requested"]
        assert row["e2e_with_loads_s"] >= row["e2e_s"] > 0


def test_a_model_that_always_wants_to_stop_still_runs_the_full_length():
    model = ScriptedModel(lambda step, context: EOS)
    run = edge_stage(model, StageRequest("hi", Sampling(), tokens=9))
    assert run.tokens == run.requested == 9 and run.stop_reason == "max_tokens"
    assert "sample" not in vars(model)  # the first-token probe removed itself


def test_the_think_stage_reads_a_description_of_the_extract_length(tiny_bundle):
    from edge_et.runtime.measure import open_model, stand_in_description

    model = open_model(Bundle.load(tiny_bundle).reasoning, 512)
    try:
        for n in (5, 40):
            assert abs(len(model.tokenize(text=stand_in_description(model, n))) - n) <= 2
    finally:
        model.close()


def test_json_saved_and_tables_printed(bench_run):
    report, saved, shown, _ = bench_run
    assert json.loads(saved.read_text()) == json.loads(json.dumps(report))
    for text in (
        "extract (bare)",
        "price of Extract+Think",
        "thinking-budget curve",
        "RANDOM WEIGHTS",
    ):
        assert text in shown
    rows = markdown_rows(report)
    assert len(rows) == 3 and all(
        r.count("|") == MARKDOWN_HEADER.splitlines()[0].count("|") for r in rows
    )


def test_progress_says_one_line_per_step(bench_run):
    from edge_et.bench.run import bench_steps
    from edge_et.bench.settings import BenchSettings

    lines = [line for line in bench_run[3].splitlines() if line.strip()]
    assert (
        len(lines) == bench_steps(BenchSettings(**SMALL)) == 1 + 2 + 2
    )  # bandwidth, trials, curve
    assert lines[0].startswith("measuring memory bandwidth") and "budget 4" in " ".join(lines)


def test_plot_is_written(bench_run, tmp_path):
    path = plot_report(bench_run[0], tmp_path / "plots" / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_option_mistakes_are_user_errors(tmp_path, sample_image):
    assert parse_budgets("0, 256,1024") == (0, 256, 1024) and parse_budgets("none") == ()
    for bad in ("1,x", "-5"):
        with pytest.raises(EdgeEtError):
            parse_budgets(bad)
    with pytest.raises(EdgeEtError, match="not both"):
        bench_images(sample_image, tmp_path, tmp_path)
    with pytest.raises(EdgeEtError, match="no pictures"):
        bench_images(None, tmp_path, tmp_path)
    assert bench_images(None, None, tmp_path)[0].is_file()  # the sample picture by default


# -- --deadline ---------------------------------------------------------------------------------


def test_shorter_deadline_picks_a_smaller_budget(tiny_bundle, tmp_path):
    from edge_et.runtime.deadline import choose_think_budget

    bundle = Bundle.load(tiny_bundle)
    cache_profile(bundle, tmp_path)

    def pick(seconds):
        return choose_think_budget(
            bundle, seconds, cache=tmp_path, extract_tokens=64, answer_tokens=32, max_budget=4096
        )

    long_budget, long_info = pick(40.0)
    short_budget, short_info = pick(8.0)
    none_budget, none_info = pick(1.0)
    assert 0 < short_budget < long_budget <= 4096
    assert short_info["expected_s"] <= 0.9 * 8.0 and short_info["meets_deadline"]
    assert long_info["speed"]["source"] == "cache" and long_info["applies_to"] == "think_budget"
    assert none_budget == 0 and not none_info["meets_deadline"]
    with pytest.raises(EdgeEtError):
        pick(0)


def test_speed_is_measured_once_then_cached(tiny_bundle, tmp_path):
    from edge_et.runtime.deadline import choose_think_budget

    bundle = Bundle.load(tiny_bundle)
    _, first = choose_think_budget(bundle, 30.0, cache=tmp_path)
    assert first["speed"]["source"] == "measured"
    cached = json.loads(open(first["speed"]["file"]).read())
    assert cached["key"]["files"] and cached["key"]["device"]["cpu"]
    assert cached["profile"]["reasoning"]["decode_tok_s"] > 0
    _, second = choose_think_budget(bundle, 30.0, cache=tmp_path)
    assert (
        second["speed"]["source"] == "cache" and second["speed"]["file"] == first["speed"]["file"]
    )


def test_deadline_fills_the_run_options(tiny_bundle, tmp_path, monkeypatch):
    from edge_et.runtime.deadline import apply_deadline
    from edge_et.runtime.pipeline import RunOptions

    monkeypatch.setenv("EDGE_ET_CACHE", str(tmp_path))
    bundle = Bundle.load(tiny_bundle)
    cache_profile(bundle, tmp_path)  # the default cache root now: no measurement needed
    with pytest.raises(EdgeEtError, match="-think mode"):
        apply_deadline(bundle, RunOptions(mode="direct"), 10.0)
    with pytest.raises(EdgeEtError, match="drop --think-budget"):
        apply_deadline(bundle, RunOptions(think_budget=5), 10.0)
    options, info = apply_deadline(bundle, RunOptions(answer_budget=8), 60.0)
    assert options.think_budget == info["budget"] > 0 and info["answer_tokens"] == 8
    assert info["speed"]["source"] == "cache"


def test_bare_sampler_takes_a_repeat_penalty():
    """The bare baseline builds llama.cpp's penalties sampler with the vocabulary size first,
    as the vendored llama.cpp of llama-cpp-python 0.3.36 wants (it raised TypeError before)."""
    import llama_cpp

    from edge_et.backends.llama_cpp.bare import bare_sampler

    chain = bare_sampler(Sampling(temperature=0.7, repeat_penalty=1.1, seed=1), n_vocab=128)
    try:
        assert llama_cpp.llama_sampler_chain_n(chain) == 3  # penalties, temperature, dist
    finally:
        llama_cpp.llama_sampler_free(chain)
