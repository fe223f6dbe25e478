"""mobile.json format 2: the pipeline's rules are the runtime's own values, and the Python runtime
reads a package's stage settings from mobile.json (a newer format is one line)."""

import json
import re

import pytest

from edge_et.errors import BundleError
from edge_et.formats.mobile import package_stage_settings


def test_the_pipeline_section_is_the_runtimes_constants():
    from edge_et.backends.onnx.sampling import REPEAT_WINDOW
    from edge_et.core.hints import hint_from_question
    from edge_et.core.prompts import parse_answer
    from export.mobile.contract import pipeline_contract

    rules = pipeline_contract()
    assert rules["sampler"]["repeat_window"] == REPEAT_WINDOW
    assert rules["budget_forcing"] == {
        "open": "<think>",
        "close": "</think>",
        "newline": "\n",
        "boost_from": 0.95,
    }
    assert rules["answer_cue"]["text"] == "Answer:" and rules["media_marker"] == "<__media__>"
    # The patterns as an app reads them: (?i) in front, otherwise Python's own text.
    pattern = rules["answer_pattern"]
    assert pattern == r"(?i)Answer\s*:\s*([^\n]+)"
    assert re.search(pattern, "answer : B").group(1) == parse_answer("so\nanswer : B")[0]
    option = re.compile(rules["hint_rule"]["option_line"])
    assert option.match("b) a car") and not option.match("Which one?")
    assert rules["hint_rule"]["topics"][1][0] in hint_from_question("What color is it?\nA. red")


def _package(tmp_path, fmt: str, settings: dict | None = None):
    (tmp_path / "reasoning").mkdir()
    stage = {"sessions": {"decoder": "decoder.ort"}}
    if settings is not None:
        stage["settings"] = settings
    (tmp_path / "mobile.json").write_text(
        json.dumps({"format": fmt, "stages": {"reasoning": stage}})
    )
    return tmp_path / "reasoning" / "decoder.ort"


def test_the_runtime_reads_a_packages_stage_settings_from_mobile_json(tmp_path):
    decoder = _package(
        tmp_path, "edge-et.mobile/2", {"chat_template": "{{ x }}", "max_positions": 64}
    )
    assert package_stage_settings(decoder) == {"chat_template": "{{ x }}", "max_positions": 64}
    assert (
        package_stage_settings(decoder.with_name("other.ort")) is None
    )  # not that stage's decoder


def test_format_1_and_plain_bundles_keep_onnx_config(tmp_path):
    (tmp_path / "a").mkdir()
    assert package_stage_settings(_package(tmp_path / "a", "edge-et.mobile/1", {"x": 1})) is None
    (tmp_path / "b" / "reasoning").mkdir(parents=True)
    assert package_stage_settings(tmp_path / "b" / "reasoning" / "decoder.onnx") is None


@pytest.mark.parametrize(
    "fmt, message",
    [
        (
            "edge-et.mobile/3",
            "mobile.json is format edge-et.mobile/3, newer than this edge-et reads (edge-et.mobile/2)",
        ),
        ("something/2", "mobile.json: format 'something/2' is not edge-et.mobile/N"),
    ],
)
def test_a_manifest_the_runtime_cannot_read_is_one_line(tmp_path, fmt, message):
    with pytest.raises(BundleError) as raised:
        package_stage_settings(_package(tmp_path, fmt, {}))
    assert message in str(raised.value) and "\n" not in str(raised.value)
