"""edge-et eval: the scoring arithmetic on scripted rows, the data format, runs on the tiny bundle."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from edge_et.bundle.manifest import Bundle
from edge_et.errors import EdgeEtError
from edge_et.eval.metrics import (
    Scored,
    accuracy,
    answer_letter,
    by_category,
    stage_medians,
    stage_seconds,
    wilson_interval,
)
from edge_et.eval.run import (
    check_eval_modes,
    evaluate,
    format_question,
    parse_eval_line,
    read_eval_file,
    score_record,
)
from edge_et.runtime.pipeline import Pipeline, RunOptions
from tests.helpers.short_bundle import short_bundle

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory):
    return short_bundle(tiny_bundle, tmp_path_factory.mktemp("eval-bundle"))


# -- arithmetic ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, letter",
    [
        ("B", "B"),
        ("b", "B"),
        ("(C)", "C"),
        ("A.", "A"),
        ("D) car", "D"),
        ("B: circle", "B"),
        ("**A**", "A"),
        ("  option c", "C"),
        ("Apple", None),
        ("E", None),
        ("", None),
        ("42", None),
        ("The answer is B", "B"),
        ("The answer is: D.", "D"),
        ("the answer is apple", None),
    ],
)
def test_answer_letter(answer, letter):
    assert answer_letter(answer, "ABCD") == letter


@pytest.mark.parametrize(
    "answer, letter",
    [
        # An end-to-end model's sentence that begins with the article is not option A (issue 30;
        # lmms-eval's first-character scorer reads it as A).
        ("A white star in the bottom right", None),
        ("a red circle.", None),
        ("A 1", "A"),
        ("B circle", "B"),
        ("b  Circle.", "B"),
        ("B square", None),
        ("A1", None),
        ("The answer is A white star", None),
        ("A. white star", "A"),
        ("(C) blue", "C"),
        ("D white star", "D"),
    ],
)
def test_answer_letter_is_a_real_option_letter(answer, letter):
    texts = {"A": "1", "B": "circle", "C": "blue", "D": "white star?"}
    assert answer_letter(answer, "ABCD", texts) == letter


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(500, 1000)
    assert abs((high - low) / 2 - 0.0309) < 1e-3  # ~ +-3.1 points at n=1000


def _rows():
    return [
        Scored(1, "count", "A", "A", 4, stage_s={"extract": 1.0, "think": 2.0}),
        Scored(2, "count", "B", "C", 4, stage_s={"extract": 3.0, "think": 4.0}),
        Scored(3, "color", "B", None, 2, stage_s={"extract": 2.0, "think": 10.0}),  # parse failure
        Scored(4, "color", "A", "A", 2, stage_s={"extract": 5.0, "think": 1.0}),
        Scored(5, "color", "A", None, 2, error="cannot read image 'x.png': file not found"),
    ]


def test_accuracy_counts_parse_failures_as_wrong_and_leaves_errors_out():
    acc = accuracy(_rows())
    assert (acc.correct, acc.scored, acc.parse_failures, acc.errors) == (2, 4, 1, 1)
    assert acc.accuracy == 0.5 and acc.chance == pytest.approx((0.25 + 0.25 + 0.5 + 0.5) / 4)
    assert acc.to_dict()["ci95"] == [round(x, 4) for x in wilson_interval(2, 4)]
    categories = by_category(_rows())
    assert list(categories) == ["color", "count"]
    assert (
        categories["color"].correct,
        categories["color"].scored,
        categories["color"].errors,
    ) == (1, 2, 1)
    assert accuracy([]).accuracy is None and accuracy([]).chance is None


def test_stage_medians_and_seconds():
    assert stage_medians(_rows()) == {"extract": 2.5, "think": 3.0, "question": 6.5}
    stages = {
        "extract": {"load_s": 9.0, "image_encode_s": 0.5, "prefill_s": 0.25, "decode_s": 1.0},
        "think": {"load_s": 0.0, "image_encode_s": None, "prefill_s": 0.5, "decode_s": 2.0},
    }
    assert stage_seconds(stages) == {"extract": 1.75, "think": 2.5}  # loads excluded


def test_score_record_on_scripted_records(tmp_path):
    item = parse_eval_line(
        1,
        json.dumps(
            {
                "image": "a.png",
                "question": "Q?",
                "options": ["x", "y", "z"],
                "answer": "c",
                "category": "k",
            }
        ),
        tmp_path,
    )
    assert score_record(item, {"answer": "C", "stages": {}}).correct
    wrong = score_record(item, {"answer": "D", "stages": {}})
    assert wrong.letter is None and not wrong.correct and wrong.n_options == 3
    assert score_record(item, {"error": "boom"}).error == "boom"


# -- the data format ----------------------------------------------------------------------


def test_format_question_puts_options_on_lines():
    assert format_question(" What? ", {"A": "x", "B": "y"}) == "What?\nA. x\nB. y"


def test_read_eval_file_reports_bad_lines_and_limits(tmp_path):
    good = {
        "image": "a.png",
        "question": "Q?",
        "options": {"A": "x", "B": "y"},
        "answer": "B",
        "id": 1,
    }
    lines = [
        json.dumps(good),
        "not json",
        json.dumps({**good, "answer": "C"}),
        json.dumps({**good, "options": {"A": "x", "C": "y"}}),
        json.dumps({**good, "question": ""}),
        "",
        json.dumps([1, 2]),
        json.dumps({**good, "id": 2, "category": "count"}),
        json.dumps(good),
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    data = read_eval_file(path)
    assert [item.line for item in data.items] == [1, 8, 9]
    assert data.items[0].image == tmp_path / "a.png" and data.items[0].category == "(none)"
    assert data.items[1].category == "count"
    assert len(data.errors) == 5 and data.errors[0].startswith("line 2: not valid JSON")
    assert "option letters" in data.errors[1] and "A, B, ... in order" in data.errors[2]
    assert len(read_eval_file(path, limit=2).items) == 2
    assert (
        data.items[0].seed(0) == data.items[2].seed(0) != data.items[0].seed(1)
    )  # same id, same seed


def test_unusable_files_and_modes_are_user_errors(tmp_path):
    (tmp_path / "bad.jsonl").write_text("nope\n")
    with pytest.raises(EdgeEtError, match="no usable questions"):
        read_eval_file(tmp_path / "bad.jsonl")
    with pytest.raises(EdgeEtError, match="cannot read data file"):
        read_eval_file(tmp_path / "missing.jsonl")
    with pytest.raises(EdgeEtError, match="gives no answer"):
        check_eval_modes(["extract"])
    with pytest.raises(EdgeEtError, match="unknown mode"):
        check_eval_modes(["think-hard"])
    assert check_eval_modes(["direct", "direct", "caption-think"]) == ["direct", "caption-think"]


# -- runs on the tiny bundle --------------------------------------------------------------


@pytest.fixture()
def eval_file(tmp_path, sample_image):
    Image.new("RGB", (64, 64), (30, 200, 30)).save(tmp_path / "green.png")
    rows = [
        {
            "id": "q1",
            "image": str(sample_image),
            "question": "What shape is left?",
            "options": {"A": "triangle", "B": "circle", "C": "star", "D": "square"},
            "answer": "B",
            "category": "shape",
        },
        {
            "id": "q2",
            "image": "green.png",
            "question": "What colour is it?",
            "options": {"A": "green", "B": "red"},
            "answer": "A",
            "category": "color",
        },
        {
            "id": "q3",
            "image": "missing.png",
            "question": "Is there a circle?",
            "options": {"A": "yes", "B": "no"},
            "answer": "A",
            "category": "yes/no",
        },
    ]
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nbroken line\n")
    return path


def test_evaluate_modes_side_by_side_loads_each_model_once(bundle, eval_file):
    data = read_eval_file(eval_file)
    options = RunOptions()
    seen = []
    with Pipeline(Bundle.load(bundle), residency="co-resident", n_threads=1) as pipeline:
        report = evaluate(
            pipeline,
            data,
            ["extract-think", "direct"],
            options,
            seed=3,
            progress=lambda: seen.append(1),
            on_record=lambda mode, item, record, scored: seen.append((mode, item.id)),
        )
        assert pipeline.model_loads == 2
    assert list(report.modes) == ["extract-think", "direct"]  # the caller's order
    assert (
        report.modes["direct"].model_loads == 1 and report.modes["extract-think"].model_loads == 1
    )
    for mode in report.modes.values():
        overall = mode.overall
        assert (overall.scored, overall.errors) == (2, 1)
        assert overall.parse_failures <= 2 and 0 <= overall.correct <= 2
        assert set(mode.to_dict()["categories"]) == {"shape", "color", "yes/no"}
    assert set(report.modes["extract-think"].to_dict()["median_s"]) == {
        "extract",
        "think",
        "question",
    }
    assert len(seen) == 12 and report.to_dict()["data_errors"] == 1


def test_evaluate_is_deterministic_per_item(bundle, eval_file):
    data = read_eval_file(eval_file)

    def letters():
        with Pipeline(Bundle.load(bundle), n_threads=1) as pipeline:
            report = evaluate(pipeline, data, ["extract-think"], RunOptions(), seed=11)
        return [(row.id, row.letter, row.error) for row in report.modes["extract-think"].rows]

    assert letters() == letters()


def _cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", *args, "--threads", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_eval_json_and_predictions(bundle, eval_file, tmp_path):
    predictions = tmp_path / "pred.jsonl"
    done = _cli(
        "eval",
        "--bundle",
        str(bundle),
        "--data",
        str(eval_file),
        "--mode",
        "direct",
        "--mode",
        "caption-think",
        "--limit",
        "2",
        "--predictions",
        str(predictions),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["questions"] == 2 and list(report["modes"]) == ["direct", "caption-think"]
    assert report["modes"]["direct"]["scored"] == 2
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 4 and {r["mode"] for r in rows} == {"direct", "caption-think"}
    assert all(r["gold"] in "AB" and isinstance(r["correct"], bool) for r in rows)


def test_cli_eval_table(bundle, eval_file):
    done = _cli("eval", "--bundle", str(bundle), "--data", str(eval_file), "--mode", "direct")
    assert done.returncode == 0, done.stderr
    assert "accuracy (95% Wilson interval)" in done.stdout and "parse failures" in done.stdout
    assert "unusable data line" in done.stdout and "line 4: not valid JSON" in done.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["eval", "--data", "x.jsonl"], "needs --bundle DIR|NAME and --data"),
        (["eval", "--bundle", "{bundle}", "--data", "{missing}"], "cannot read data file"),
        (
            ["eval", "--bundle", "{bundle}", "--data", "{data}", "--mode", "extract"],
            "gives no answer",
        ),
        (["eval", "--bundle", "{bundle}", "--data", "{data}", "--mode", "nope"], "unknown mode"),
        (["eval", "--bundle", "{missing}", "--data", "{data}"], "bundle"),
    ],
)
def test_cli_eval_errors_are_one_line(bundle, eval_file, tmp_path, args, fragment):
    fill = {"bundle": str(bundle), "data": str(eval_file), "missing": str(tmp_path / "nope")}
    done = _cli(*[a.format(**fill) for a in args], timeout=60)
    assert done.returncode == 2, done.stderr
    assert fragment in done.stderr and "Traceback" not in done.stderr


def test_a_question_whose_image_path_the_system_refuses_is_that_line_s_error(tmp_path):
    good = {"image": "a.png", "question": "Q?", "options": {"A": "x", "B": "y"}, "answer": "B"}
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({**good, "image": "x" * 10_000}) + "\n" + json.dumps(good) + "\n")
    data = read_eval_file(path)
    assert [item.line for item in data.items] == [2]
    assert len(data.errors) == 1 and "too long" in data.errors[0] and len(data.errors[0]) < 300
