"""The easy-VQA converter: deterministic, the answer always among the options, distractors of its type."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_et.eval.data import (
    SHAPES,
    YES_NO,
    SourceQuestion,
    answer_pools,
    convert_easy_vqa,
    to_eval_line,
)
from edge_et.eval.run import read_eval_file

ROOT = Path(__file__).resolve().parents[2]
easy_vqa = pytest.importorskip(
    "easy_vqa", reason="pip install 'edge-et[test]' installs easy-vqa==1.0"
)
POOLS = answer_pools(easy_vqa.get_answers())


def test_answer_pools_split_easy_vqa_answers_by_type():
    assert POOLS["shape"] == SHAPES and POOLS["yes/no"] == YES_NO
    assert len(POOLS["color"]) == 8 and "teal" in POOLS["color"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("easy") / "easy.jsonl"
    summary = convert_easy_vqa(out, seed=0)
    return out, summary


def test_full_test_split_converts_into_readable_eval_lines(converted):
    out, summary = converted
    assert summary.questions == 9673 and summary.images == 1000
    assert summary.categories == {"color": 1280, "shape": 1257, "yes/no": 7136}
    data = read_eval_file(out)
    assert len(data.items) == 9673 and not data.errors
    assert all(item.image.is_file() for item in data.items[:50])
    texts, answers, _ = easy_vqa.get_test_questions()
    for item, text, answer in zip(data.items, texts, answers):
        assert item.options[item.answer] == answer
        assert item.question.lower() == text.lower()
        pool = POOLS[item.category]
        assert set(item.options.values()) <= set(pool) and len(set(item.options.values())) == len(
            item.options
        )
        assert len(item.options) == {"shape": 3, "color": 4, "yes/no": 2}[item.category]


def test_correct_letters_are_spread(converted):
    data = read_eval_file(converted[0])
    colour_letters = [item.answer for item in data.items if item.category == "color"]
    assert all(colour_letters.count(letter) > 200 for letter in "ABCD")


def test_conversion_is_deterministic_and_seeded(tmp_path):
    first, again, other = (tmp_path / name / "easy.jsonl" for name in ("a", "b", "c"))
    convert_easy_vqa(first, seed=5, limit=300)
    convert_easy_vqa(again, seed=5, limit=300)
    convert_easy_vqa(other, seed=6, limit=300)
    a = [json.loads(line) for line in first.read_text().splitlines()]
    b = [json.loads(line) for line in again.read_text().splitlines()]
    assert a == b and len(a) == 300
    assert a != [json.loads(line) for line in other.read_text().splitlines()]


def test_one_line_is_a_function_of_seed_and_index():
    question = SourceQuestion(index=7, text="what color is the circle?", answer="teal", image_id=3)
    line = to_eval_line(question, POOLS, 0, "img/3.png")
    assert line == to_eval_line(question, POOLS, 0, "img/3.png")
    assert (
        line["question"] == "What color is the circle?"
        and line["options"][line["answer"]] == "teal"
    )
    assert line["id"] == "easy-vqa-test-7" and line["category"] == "color"


def test_cli_convert_subcommand(tmp_path):
    out = tmp_path / "sub" / "small.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "eval",
            "convert",
            "easy-vqa",
            "--out",
            str(out),
            "--limit",
            "10",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["questions"] == 10
    assert len(out.read_text().splitlines()) == 10 and (tmp_path / "sub" / "small_images").is_dir()
