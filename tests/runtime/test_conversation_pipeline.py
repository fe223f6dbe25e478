"""Conversations, JSON constraints and image detail in the Python API, on real tiny models:
the layout the reasoner sees, that a single turn stays the paper's prompt, that follow-ups
reload and re-encode nothing, that a constrained extraction parses, that `low` is one view on
LLaVA-OneVision and a refusal on ONNX."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import edge_et
from edge_et.bundle.manifest import Bundle
from edge_et.core import conversation, prompts
from edge_et.core.chat import render_chat, render_user_turn
from edge_et.core.conversation import History, Turn
from edge_et.formats import llava_ov
from edge_et.runtime.constraints import check_constraint, json_constraint
from tests.helpers.short_bundle import short_bundle

ROOT = Path(__file__).resolve().parents[2]
PAPER = prompts.reasoning_prompt("A green circle.", "What color?", step_by_step=True)


def test_a_single_turn_is_the_papers_prompt_exactly():
    messages = conversation.messages(None, PAPER)
    assert messages == [{"role": "user", "content": PAPER}]
    template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    assert render_chat(template, messages) == render_user_turn(template, PAPER)
    assert conversation.messages(History(), PAPER) == messages


def test_earlier_turns_are_description_and_question_then_the_answer():
    history = History(
        system="Be brief.",
        turns=(
            Turn(
                question="What is there?", answer="B", extraction="A red square left of a circle."
            ),
            Turn(question="hello", answer="hi"),
        ),
    )
    messages = conversation.messages(history, PAPER)
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert (
        messages[1]["content"]
        == "Description: A red square left of a circle.\nQuestion: What is there?"
    )
    assert messages[3]["content"] == "hello"  # a text-only turn
    assert messages[-1]["content"] == PAPER
    assert conversation.messages(history, PAPER, keep=1)[1:3] == messages[3:5]  # oldest dropped


@pytest.fixture(scope="module")
def short(tiny_bundle, tmp_path_factory) -> Path:
    return short_bundle(tiny_bundle, tmp_path_factory.mktemp("chat"))


def test_a_conversation_reloads_and_reencodes_nothing_and_carries_its_turns(short, sample_image):
    with edge_et.open_pipeline(short, threads=1) as pipeline:
        text = pipeline.chat([{"role": "user", "content": "What is two plus two?"}], seed=1)
        assert text.mode == "chat" and text.stages.keys() == {"think"}
        talk = edge_et.Conversation(
            pipeline, image=sample_image, options=edge_et.RunOptions(seed=3, return_prompt=True)
        )
        results = [
            talk.ask(question)
            for question in (
                "What color is the circle?",
                "Where is the square?",
                "Which is larger?",
            )
        ]
        assert pipeline.image_encodes == 1 and pipeline.model_loads == 2
    assert [r.stages["extract"].image_cached for r in results] == [False, True, True]
    third = results[2].conversation
    assert third["turns"] == 2 and third["dropped"] == 0
    first_answer = talk.messages[1]["content"]
    assert (
        "Question: What color is the circle?" in third["prompt"] and first_answer in third["prompt"]
    )
    assert results[0].conversation is None  # the first turn: no history, the paper's prompt


def test_a_constrained_extraction_is_json_under_the_schema(tiny_bundle, sample_image):
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["total", "paid"],
        "properties": {
            "total": {"type": "integer"},
            "paid": {"type": "boolean"},
            "shop": {"type": "string", "maxLength": 8},
        },
    }
    with edge_et.open_pipeline(tiny_bundle, threads=1) as pipeline:
        for seed in range(3):
            result = pipeline.run(
                sample_image,
                "What does the receipt say?",
                mode="extract",
                seed=seed,
                constraint=json_constraint(schema),
            )
            jsonschema.validate(json.loads(result.extraction), schema)


def test_run_json_schema_and_image_detail_flags(short, sample_image, tmp_path):
    schema = tmp_path / "answer.schema.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "required": ["answer"],
                "additionalProperties": False,
                "properties": {"answer": {"enum": ["A", "B", "C", "D"]}},
            }
        )
    )
    command = [
        sys.executable,
        "-m",
        "edge_et.cli.main",
        "run",
        "--bundle",
        str(short),
        "--image",
        str(sample_image),
        "-q",
        "What color?",
        "--json",
        "--seed",
        "1",
        "--threads",
        "1",
        "--json-schema",
        str(schema),
        "--answer-budget",
        "40",
        "--image-detail",
        "low",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    answer = result["reasoning"].partition("</think>")[2]
    assert json.loads(answer)["answer"] in "ABCD" and result["image_detail"] == "low"
    bad = subprocess.run(
        command[:-6] + ["--image-detail", "tiny"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "image detail" in bad.stderr


def test_edge_et_chat_answers_each_line_with_the_models_loaded_once(short, sample_image):
    command = [
        sys.executable,
        "-m",
        "edge_et.cli.main",
        "chat",
        "--bundle",
        str(short),
        "--image",
        str(sample_image),
        "--json",
        "--seed",
        "2",
        "--threads",
        "1",
    ]
    done = subprocess.run(
        command,
        input="What color is the circle?\n\nAnd the square?\n/quit\nignored\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    turns = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(turns) == 2
    assert [turn["stages"]["extract"]["image_cached"] for turn in turns] == [False, True]
    assert turns[1]["stages"]["think"]["load_s"] == 0  # loaded once, for the first turn
    assert turns[1]["conversation"]["turns"] == 1


@pytest.fixture(scope="module")
def tiny_llava_ov(tmp_path_factory):
    """{"onnx": a tiny LLaVA-OneVision + Qwen3 ONNX bundle, "gguf": its GGUF twin}."""
    pytest.importorskip("optimum.exporters.onnx")
    from export.tiny.onnx import tiny_onnx
    from tests.helpers.onnx_twins import gguf_twin

    tiny = tiny_onnx(perception="llava-ov-qwen3", reasoning="qwen3", quant="fp32", validate=False)
    return {"onnx": tiny.bundle, "gguf": gguf_twin(tiny, tmp_path_factory.mktemp("gguf"))}


def test_low_detail_is_one_global_view_on_llava_onevision(tiny_llava_ov):
    import numpy as np

    picture = np.full((768, 1024, 3), 200, dtype=np.uint8)
    picture[100:400, 100:500] = (20, 160, 40)
    bundle = Bundle.load(tiny_llava_ov["gguf"])
    bundle.decoding = {"extract": {"max_tokens": 1}}
    tokens = {}
    with edge_et.Pipeline(bundle, n_threads=1) as pipeline:
        for detail in ("high", "low"):
            result = pipeline.perceive(
                picture,
                "What is there?",
                edge_et.RunOptions(mode="extract", seed=0, image_detail=detail),
            )
            tokens[detail] = result.stages["extract"].prompt_tokens
            assert result.image_detail == detail and not result.stages["extract"].image_cached
    layout = llava_ov.read_layout(bundle.perception.mmproj_path)
    request = tokens["high"] - llava_ov.count_tokens(768, 1024, layout)
    # the global view alone: no grid, no newlines (the paper-size saving is measured in
    # benchmarks/results/image_detail.md; this tiny encoder's views are a few tokens each)
    assert tokens["low"] == request + layout.side**2 < tokens["high"]


def test_onnx_refuses_a_json_constraint_in_one_line(tiny_llava_ov, sample_image, tmp_path):
    with pytest.raises(edge_et.InputError, match="cannot constrain"):
        check_constraint(Bundle.load(tiny_llava_ov["onnx"]), "extract-think", json_constraint(None))
    schema = tmp_path / "any.schema.json"
    schema.write_text("{}")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "run",
            "--bundle",
            str(tiny_llava_ov["onnx"]),
            "--image",
            str(sample_image),
            "-q",
            "x",
            "--json-schema",
            str(schema),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert (
        done.returncode == 2 and "cannot constrain" in done.stderr and done.stderr.count("\n") == 1
    )
