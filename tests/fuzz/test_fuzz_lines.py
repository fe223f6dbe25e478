"""Fuzz the JSONL a user hands in (batch and eval lines) and the result files a resume reads."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edge_et.core.journal import json_line, read_journal
from edge_et.errors import InputError
from edge_et.eval.run import parse_eval_line
from edge_et.runtime.batch import read_batch
from tests.fuzz.mutate import mutated
from tests.fuzz.test_fuzz_manifests import VALUES

FOLDER = Path(tempfile.mkdtemp(prefix="edge-et-fuzz-lines-"))
atexit.register(shutil.rmtree, FOLDER, True)  # scratch files of this session only
FIELDS = ["image", "question", "id", "hint", "seed", "options", "answer", "category"]
BATCH_LINE = {"image": "a.png", "question": "What?\nA. x\nB. y", "id": "q1", "seed": 3}
EVAL_LINE = {
    "image": "a.png",
    "question": "What?",
    "options": {"A": "x", "B": "y"},
    "answer": "A",
    "category": "c",
    "id": 7,
}


@st.composite
def json_lines(draw, base: dict) -> str:
    """`base` with fields set to arbitrary JSON values, or any JSON value, or mutated text."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return json.dumps(draw(VALUES))
    if kind == 1:
        return draw(mutated([json.dumps(base).encode()], max_edits=3)).decode("utf-8", "replace")
    line = dict(base)
    for key in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3)):
        line[key] = draw(st.one_of(VALUES, st.text(max_size=300)))
    return json.dumps(line)


@given(st.lists(json_lines(BATCH_LINE), min_size=1, max_size=5))
def test_batch_lines_parse_into_items_or_line_errors(lines):
    path = FOLDER / "batch.jsonl"
    path.write_text("\n".join(line.replace("\n", " ") for line in lines) + "\n", encoding="utf-8")
    try:
        items = read_batch(path)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    for item in items:
        assert item.error is None or "\n" not in item.error
        json_line({"error": item.error, "question": item.question}).encode("utf-8")  # as written
        assert item.error is not None or (item.image is not None and isinstance(item.question, str))


@given(json_lines(EVAL_LINE))
def test_eval_lines_parse_or_fail_with_a_reason(line):
    try:
        item = parse_eval_line(1, line, FOLDER)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert item.answer in item.options and len(item.options) >= 2


@given(
    mutated(
        [
            b'{"index": 0, "id": "a", "answer": "B"}\n{"index": 1, "id": null}\n',
            b'{"index": 0}\n{"ind',
        ],
        max_edits=4,
    )
)
def test_a_result_file_to_resume_reads_or_fails_in_one_line(data: bytes):
    path = FOLDER / "out.jsonl"
    path.write_bytes(data)
    try:
        records = read_journal(path, repair=True)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(record, dict) for record in records)
    assert path.read_bytes()[-1:] in (b"", b"\n")  # appends start on a fresh line
