"""Paths the system cannot look up (a 10,000-character name, a NUL) are one short line, not OSError."""

import json

import pytest

from edge_et.core.images import load_image
from edge_et.core.jsonl import local_path, parse_lines, read_lines
from edge_et.core.paths import path_problem, shown
from edge_et.errors import EdgeEtError

LONG = "x" * 10_000
NUL = "a\0b.png"
SHORT_MESSAGE = 300  # a long path is shortened, so every message stays readable


def test_a_lookable_path_has_no_problem_even_when_missing(tmp_path):
    assert path_problem(tmp_path) is None
    assert path_problem(tmp_path / "missing.png") is None


@pytest.mark.parametrize("name, reason", [(LONG, "too long"), (NUL, "NUL character")])
def test_problems_are_named(tmp_path, name, reason):
    assert reason in path_problem(tmp_path / name)


def test_shown_keeps_short_paths_and_shortens_long_ones():
    assert shown("images/cat.png") == "images/cat.png"
    long = shown("/data/" + LONG + ".png")
    assert long.startswith("/data/xxx") and long.endswith("xxx.png (10,010 characters)")
    assert len(long) < 120
    assert shown(NUL) == "a\\0b.png"


@pytest.mark.parametrize("name, reason", [(LONG, "too long"), (NUL, "NUL character")])
def test_an_image_path_the_system_refuses_is_one_short_line(tmp_path, name, reason):
    with pytest.raises(EdgeEtError) as caught:
        load_image(tmp_path / name)
    message = str(caught.value)
    assert message.startswith("cannot read image") and reason in message
    assert "\n" not in message and len(message) < SHORT_MESSAGE


@pytest.mark.parametrize("name, reason", [(LONG, "too long"), (NUL, "NUL character")])
def test_a_data_line_with_such_a_path_is_that_line_s_error(tmp_path, name, reason):
    with pytest.raises(ValueError, match=reason):
        local_path(name, tmp_path)
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"image": name}) + "\n" + json.dumps({"image": "ok.png"}) + "\n")
    items, errors = parse_lines(
        data, lambda n, raw, folder: local_path(raw["image"], folder), what="lines"
    )
    assert items == [tmp_path / "ok.png"]
    assert len(errors) == 1 and errors[0].startswith("line 1: path '")
    assert reason in errors[0] and len(errors[0]) < SHORT_MESSAGE


@pytest.mark.parametrize("name, reason", [(LONG, "too long"), (NUL, "NUL character")])
def test_a_data_file_the_system_refuses_is_one_short_line(tmp_path, name, reason):
    with pytest.raises(EdgeEtError) as caught:
        read_lines(tmp_path / name, "data file")
    message = str(caught.value)
    assert message.startswith("cannot read data file") and reason in message
    assert len(message) < SHORT_MESSAGE
