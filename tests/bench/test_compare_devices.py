"""`edge-et compare`: reports from different machines side by side, predictions labelled, the
arithmetic checked on hand-made reports (no model runs)."""

import json

import pytest

from edge_et.bench.devices import compare_devices
from edge_et.errors import InputError
from tests.cli.test_cli_errors import assert_one_line_error, edge_et


def _report(cpu: str, threads: int, bandwidth: float, decode: float, bundle="b") -> dict:
    stage = {
        "load_s": {"median": 1.0},
        "image_encode_s": {"median": 0.4},
        "prefill_tok_s": {"median": 100.0},
        "decode_tok_s": {"median": decode},
        "ttft_s": {"median": 2.0},
        "peak_rss_bytes": {"median": 512 * 2**20},
    }
    return {
        "bundle": bundle,
        "settings": {"extract_tokens": 64, "think_tokens": 256},
        "machine": {
            "cpu": cpu,
            "threads": threads,
            "usable_cores": threads,
            "ram_bytes": 8 * 2**30,
            "os": "Linux",
            "gpu": None,
            "onnxruntime": "1.32.0",
        },
        "stages": {"extract": stage, "think": stage},
        "bandwidth": {"read_bytes_per_s_all_threads": bandwidth},
        "roofline": {"think": {"pct_of_limit": 60.0}},
    }


@pytest.fixture
def reports(tmp_path):
    a, b = tmp_path / "laptop.json", tmp_path / "pi.json"
    a.write_text(json.dumps(_report("Laptop CPU", 8, 51.2e9, 20.0)))
    # `bench --against` saves {"reports": [...]}: both count.
    b.write_text(
        json.dumps(
            {
                "reports": [
                    _report("Cortex-A76", 4, 17.1e9, 6.0),
                    _report("Cortex-A76", 4, 17.1e9, 9.0, bundle="c"),
                ]
            }
        )
    )
    return a, b


def test_devices_side_by_side_with_a_labelled_prediction(reports):
    result = compare_devices(reports, ["galaxy-s22"])
    kinds = [d["kind"] for d in result["devices"]]
    assert kinds == ["measured", "measured", "measured", "prediction"]
    assert result["devices"][0]["label"] == "Laptop CPU, 8 threads, 8 GiB"
    think = {row["device"]: row for row in result["stages"]["think"]}
    assert [think[i]["decode_tok_s"] for i in range(3)] == [20.0, 6.0, 9.0]
    predicted = think[3]  # from the first report: 51.2 GB/s and 8 cores, as the Galaxy S22
    assert predicted["decode_tok_s"] == pytest.approx(20.0) and predicted[
        "prefill_tok_s"
    ] == pytest.approx(100.0)
    assert predicted["pct_of_limit"] == 60.0 and predicted["peak_rss_bytes"] == 512 * 2**20
    label = result["devices"][3]
    assert label["label"] == "galaxy-s22 (PREDICTED)" and label["method"].startswith("PREDICTION")
    assert label["published_decode"][0]["tok_s"] == 59
    assert any("different bundles" in n for n in result["notes"])


def test_prediction_scales_from_the_reference(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_report("Slow", 2, 10e9, 5.0)))
    row = compare_devices([path], ["raspberry-pi-5-8gb"])["stages"]["extract"][1]
    assert row["decode_tok_s"] == pytest.approx(5.0 * 1.71)  # bandwidth 17.1 / 10
    assert row["prefill_tok_s"] == pytest.approx(200.0)  # 4 cores / 2
    assert row["image_encode_s"] == pytest.approx(0.2) and row["ttft_s"] == pytest.approx(1.0)
    assert row["load_s"] == 1.0


def test_bad_reports_are_one_line(tmp_path, reports):
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": 1}')
    with pytest.raises(InputError, match="is not an `edge-et bench` report"):
        compare_devices([bad])
    assert_one_line_error(
        edge_et("compare", str(tmp_path / "missing.json")), "cannot read the bench report"
    )
    assert_one_line_error(
        edge_et("compare", str(reports[0]), "--device-profile", "nokia"),
        "unknown device profile 'nokia'",
    )


def test_compare_command_prints_tables_json_and_a_chart(reports, tmp_path):
    pytest.importorskip("matplotlib")
    chart = tmp_path / "chart.png"
    done = edge_et(
        "compare",
        *map(str, reports),
        "--device-profile",
        "iphone-15-pro",
        "--plot",
        str(chart),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["devices"][-1]["prediction_for"] == "iphone-15-pro"
    assert chart.stat().st_size > 10_000
    shown = edge_et("compare", *map(str, reports), "--device-profile", "iphone-15-pro")
    assert "PREDICTED" in shown.stdout and "think: devices side by side" in shown.stdout


def test_a_report_names_its_device():
    from edge_et.runtime.measure import machine_info

    machine = machine_info()
    assert {"cpu", "gpu", "logical_cores", "usable_cores", "ram_bytes", "os", "onnxruntime"} <= set(
        machine
    )
    assert machine["cpu"] and machine["ram_bytes"] > 0
