"""The paper's prompt strings and answer parsing (docs/method.md; tests/data/paper_prompts.txt)."""

from pathlib import Path

import pytest

from edge_et.core import prompts
from edge_et.core.hints import hint_from_question, question_stem

# The method's strings as the paper and its code have them (source named in the file).
PAPER_PROMPTS = Path(__file__).resolve().parents[1] / "data" / "paper_prompts.txt"

EXPECTED_EXTRACTION = (
    "Describe the fine-grained content of the image, including scenes, objects, relationships, "
    "instance location, and any text present. Especially, pay attention to the spatial "
    "relationships between objects in the image."
)
EXPECTED_THINKING = (
    "You are an excellent text-based reasoning expert. You are required to answer the question "
    "based on the detailed description of the image.\n\nDescription: A cat on a mat.\n"
    "Question: Where is the cat?\nA. mat\nB. roof\nPlease reason step by step, and give the final "
    'answer on the last line by itself in the format of "Answer:". Do not add anything other '
    'than the letter answer after "Answer:".'
)


def test_extraction_prompt_is_the_papers_and_adds_a_period():
    hint = "the spatial relationships between objects in the image"
    assert prompts.extraction_prompt(hint) == EXPECTED_EXTRACTION
    assert prompts.extraction_prompt(hint + ".") == EXPECTED_EXTRACTION


def test_reasoning_prompt_thinking_and_non_thinking():
    question = "Where is the cat?\nA. mat\nB. roof"
    assert (
        prompts.reasoning_prompt("A cat on a mat.", question, step_by_step=True)
        == EXPECTED_THINKING
    )
    direct = prompts.reasoning_prompt("A cat on a mat.\n", "Hint: look.\nQ", step_by_step=False)
    assert direct.endswith(
        "Description: A cat on a mat.\nHint: look.\nQ\nAnswer directly with the "
        'option\'s letter in the format of "Answer:". Do not add anything other '
        'than the letter answer after "Answer:".'
    )
    assert "Question: Question:" not in prompts.reasoning_prompt(
        "d", "question: x", step_by_step=True
    )


def _paper_strings() -> list[str]:
    lines = PAPER_PROMPTS.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_strings_match_the_papers_verbatim():
    extraction, role, thinking, non_thinking = _paper_strings()
    assert prompts.EXTRACTION_PREFIX + "{hint}." == extraction
    assert prompts.REASONING_ROLE == role + "\n\n"
    assert prompts.THINKING_POST_PROMPT == "\n" + thinking
    assert prompts.NON_THINKING_POST_PROMPT == "\n" + non_thinking
    # Caption+Think asks the same as the extraction, without the question-specific sentence.
    assert extraction.startswith(prompts.CAPTION_PROMPT + " Especially,")


@pytest.mark.parametrize(
    "output, answer, matched",
    [
        ("<think>hmm</think>\nThe shape is round.\nAnswer: B", "B", True),
        ("answer : c\n", "c", True),
        ("Answer: A\nI am sure.", "I am sure.", False),  # only the last line counts
        ("B", "B", False),
        ("", "", False),
        ("reasoning\nFinal ANSWER:D) circle", "D) circle", True),
    ],
)
def test_parse_answer_uses_the_last_line(output, answer, matched):
    assert prompts.parse_answer(output) == (answer, matched)


def test_prompt_overrides_ignore_unknown_keys():
    custom = prompts.PromptSet.from_overrides({"caption": "Describe.", "nonsense": "x"})
    assert custom.caption == "Describe." and custom.reasoning_role == prompts.REASONING_ROLE


@pytest.mark.parametrize(
    "question, expected",
    [
        ("How many circles are there?", "the number of each kind of object in the image"),
        ("What color is the square?", "the colors of the objects in the image"),
        (
            "What is to the left of the star?\nA. circle\nB. square",
            "the spatial relationships between objects in the image",
        ),
        ("What does the sign say?", "any text, numbers and labels written in the image"),
        ("Why is the man happy?", 'the details needed to answer "Why is the man happy?"'),
    ],
)
def test_hint_rule(question, expected):
    assert hint_from_question(question) == expected


def test_hint_rule_joins_topics_and_strips_options():
    assert (
        question_stem("Question: Which is bigger?\nA. red\n(B) blue\nOptions: x")
        == "Which is bigger?"
    )
    hint = hint_from_question("How many red circles are left of the square?")
    assert hint.startswith("the number of each kind of object in the image, the colors")
    assert hint.endswith(" and the spatial relationships between objects in the image")


def test_reasoning_heads_are_the_leading_parts_of_the_reasoning_prompt():
    from edge_et.core.prompts import PromptSet, reasoning_heads, reasoning_prompt

    custom = PromptSet.from_overrides({"reasoning_role": "Role.\n\n"})
    for description in ("A red circle.", "A red circle.\n", ""):
        for chosen in (PromptSet(), custom):
            fixed, described = reasoning_heads(description, chosen)
            whole = reasoning_prompt(description, "Which?", step_by_step=True, prompts=chosen)
            assert whole.startswith(described) and described.startswith(fixed)
            assert whole[len(described) :].startswith("Question: Which?")
            assert fixed == chosen.reasoning_role + "Description: "
