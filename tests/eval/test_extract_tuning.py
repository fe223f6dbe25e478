"""edge-et data extract-tuning: the two prompts, input parsing, resuming, runs on the tiny bundle."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from edge_et.bundle.manifest import Bundle
from edge_et.core.prompts import CAPTION_PROMPT
from edge_et.errors import EdgeEtError
from edge_et.eval import extract_tuning as tuning
from edge_et.runtime.pipeline import Pipeline
from tests.helpers.short_bundle import short_bundle

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory):
    return short_bundle(tiny_bundle, tmp_path_factory.mktemp("teacher"))


SMALL = dict(
    statement_decoding=tuning.StageDecoding(max_tokens=6),
    target_decoding=tuning.StageDecoding(max_tokens=6),
)


def test_prompts_follow_the_recipe():
    step1 = tuning.statement_request("What  colour is\nthe ball?", " red ")
    assert step1.endswith(
        "\nQuestion #1: What colour is the ball?\nAnswer: red\nDeclarative Statement(s):"
    )
    assert "self-contained declarative statement" in step1
    step2 = tuning.target_request(" The ball is red. ")
    # The paper's fine-grained description request, then the statement to incorporate.
    assert CAPTION_PROMPT[len("Describe") :] in step2
    assert step2.endswith(
        "incorporate the following information about the image.\nThe ball is red.\nDescription:"
    )


@pytest.mark.parametrize(
    "generated, statement",
    [
        ("The ball is red.", "The ball is red."),
        ("Declarative Statement: The ball is red.\n", "The ball is red."),
        ('  "The ball\n is red."', "The ball is red."),
        ("- 1. The ball is red.", "The ball is red."),
        ("", ""),
    ],
)
def test_clean_statement(generated, statement):
    assert tuning.clean_statement(generated) == statement


def test_parse_pair_accepts_plain_and_eval_lines(tmp_path):
    plain = tuning.parse_pair(1, {"image": "a.png", "question": "Q?", "answer": 3}, tmp_path)[1]
    assert (plain.id, plain.answer, plain.image) == ("line-1", "3", tmp_path / "a.png")
    mc = tuning.parse_pair(
        2,
        {
            "id": 9,
            "image": "/x/b.png",
            "question": "Q?",
            "options": {"A": "circle", "B": "star"},
            "answer": "b",
        },
        tmp_path,
    )[1]
    assert (mc.id, mc.answer, mc.image) == ("9", "star", Path("/x/b.png"))
    for bad in (
        {"image": "a.png", "question": "Q?"},
        {"image": "", "question": "Q?", "answer": "x"},
        {"image": "a.png", "question": True, "answer": "x"},
    ):
        with pytest.raises(ValueError):
            tuning.parse_pair(3, bad, tmp_path)


def test_teacher_image_is_512_square(sample_image):
    picture = tuning.teacher_image(sample_image)
    assert picture.rgb.shape == (512, 512, 3) and (picture.width, picture.height) == (512, 512)


@pytest.fixture()
def pairs_file(tmp_path, sample_image):
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    rows = [
        {
            "id": "p1",
            "image": str(sample_image),
            "question": "What is left of the square?",
            "answer": "a circle",
        },
        {"id": "p2", "image": "red.png", "question": "What colour is it?", "answer": "red"},
        {"id": "p3", "image": "gone.png", "question": "Any text?", "answer": "EDGE"},
        {"id": "p1", "image": "red.png", "question": "dup", "answer": "x"},
    ]
    path = tmp_path / "vqa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{bad\n")
    return path


def test_make_targets_resumes_and_builds_both_prompts(bundle, pairs_file, tmp_path):
    pairs, bad = tuning.read_pairs(pairs_file)
    assert [p.id for p in pairs] == ["p1", "p2", "p3"] and len(bad) == 2 and "repeats" in bad[1]
    out = tmp_path / "targets" / "t.jsonl"
    calls = []
    with Pipeline(Bundle.load(bundle), residency="swap", n_threads=1) as pipeline:
        ask = pipeline.ask
        pipeline.ask = lambda role, request, **kw: (
            calls.append((role, request, kw.get("image"))) or ask(role, request, **kw)
        )
        first = tuning.make_targets(pipeline, pairs, out, chunk=8, **SMALL)
    assert (first.written, first.failed, first.skipped) == (
        2,
        1,
        0,
    ) and "gone.png" in first.failures[0]
    assert first.model_loads == 2  # swap: step 1 for the chunk, then step 2, one load each
    assert [role for role, _, _ in calls] == ["reasoning", "reasoning", "perception", "perception"]
    assert "Answer: a circle" in calls[0][1] and calls[1][1].startswith(
        tuning.STATEMENT_PROMPT[:40]
    )
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["p1", "p2"]
    for record, (_, request, image) in zip(records, calls[2:]):
        assert image.width == image.height == 512
        assert request == tuning.target_request(record["statement"]) and record["statement"]
        assert isinstance(record["target"], str) and record["image"].endswith(".png")
        assert {"statement", "target"} <= set(record["stages"])
    assert records[1]["image"] == "../red.png"  # relative to the output's folder

    out.write_text(out.read_text().splitlines()[0] + '\n{"id": "p2", "tor')  # a torn last line
    with Pipeline(Bundle.load(bundle), n_threads=1) as pipeline:
        again = tuning.make_targets(pipeline, pairs, out, **SMALL)
    assert (again.skipped, again.written, again.failed) == (1, 1, 1)
    assert tuning.done_ids(out) == {"p1", "p2"}


def test_unknown_statement_model_is_a_user_error(bundle, pairs_file, tmp_path):
    pairs, _ = tuning.read_pairs(pairs_file)
    with (
        Pipeline(Bundle.load(bundle), n_threads=1) as pipeline,
        pytest.raises(EdgeEtError, match="reasoning, perception"),
    ):
        tuning.make_targets(pipeline, pairs, tmp_path / "t.jsonl", statement_role="teacher")


def _cli(*args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "data",
            "extract-tuning",
            *args,
            "--threads",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_extract_tuning(bundle, pairs_file, tmp_path):
    out = tmp_path / "t.jsonl"
    done = _cli(
        "--teacher",
        str(bundle),
        "--in",
        str(pairs_file),
        "--out",
        str(out),
        "--statement-model",
        "perception",
        "--statement-tokens",
        "4",
        "--target-tokens",
        "4",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["written"], summary["failed"], summary["bad_lines"]) == (2, 1, 2)
    assert len(out.read_text().splitlines()) == 2


def test_cli_extract_tuning_errors_are_one_line(bundle, tmp_path):
    (tmp_path / "empty.jsonl").write_text("{}\n")
    for args, fragment in (
        (["--teacher", str(bundle), "--in", str(tmp_path / "empty.jsonl")], "no usable"),
        (["--teacher", str(tmp_path), "--in", str(tmp_path / "empty.jsonl")], "no usable"),
        (["--teacher", str(bundle), "--in", str(tmp_path / "none.jsonl")], "cannot read"),
    ):
        done = _cli(*args, "--out", str(tmp_path / "o.jsonl"))
        assert done.returncode == 2 and fragment in done.stderr and "Traceback" not in done.stderr


def test_make_targets_stops_after_the_pair_in_flight(bundle, pairs_file, tmp_path):
    pairs, _ = tuning.read_pairs(pairs_file)
    out = tmp_path / "t.jsonl"
    with Pipeline(Bundle.load(bundle), n_threads=1) as pipeline:
        stopped = tuning.make_targets(pipeline, pairs, out, stop=lambda: True, **SMALL)
        assert stopped.written == 1 and tuning.done_ids(out) == {"p1"}
        rest = tuning.make_targets(pipeline, pairs, out, **SMALL)
    assert (rest.skipped, rest.written) == (1, 1) and tuning.done_ids(out) == {"p1", "p2"}


def test_ctrl_c_finishes_the_pair_in_flight_and_the_same_command_continues(bundle, tmp_path):
    import signal
    import time

    Image.new("RGB", (40, 30), (30, 30, 200)).save(tmp_path / "blue.png")
    rows = [
        {
            "id": f"q{i}",
            "image": "blue.png",
            "question": f"What colour is shape {i}?",
            "answer": "blue",
        }
        for i in range(24)
    ]
    (tmp_path / "vqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "t.jsonl"
    args = [
        sys.executable,
        "-m",
        "edge_et.cli.main",
        "data",
        "extract-tuning",
        "--teacher",
        str(bundle),
        "--in",
        str(tmp_path / "vqa.jsonl"),
        "--out",
        str(out),
        "--threads",
        "1",
        "--chunk",
        "4",
        "--statement-tokens",
        "8",
        "--target-tokens",
        "8",
    ]
    process = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not (out.is_file() and out.read_text().count("\n") >= 1):
        assert process.poll() is None and time.monotonic() < deadline, "no target was written"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    stopped = [line for line in stderr.splitlines() if line.startswith("stopped by SIGINT")]
    assert (
        len(stopped) == 1
        and "the same command continues: edge-et data extract-tuning" in stopped[0]
    )
    written = out.read_text().splitlines()
    assert 1 <= len(written) < 24 and all(
        json.loads(line)["target"] is not None for line in written
    )
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(r["id"] for r in rows)  # every pair once
