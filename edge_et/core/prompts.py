"""The paper's prompts and answer parsing, as pure functions.

Every string here is the method's own (docs/method.md; the authors' lmms-eval files
`stage_1_utils.py` and `qwen3.py`); fidelity needs them character for character.
A bundle may override any template through its `prompts` section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

EXTRACTION_PREFIX = (
    "Describe the fine-grained content of the image, including scenes, objects, relationships, "
    "instance location, and any text present. Especially, pay attention to "
)
# Caption+Think: the same request without the question-specific sentence.
CAPTION_PROMPT = (
    "Describe the fine-grained content of the image, including scenes, objects, relationships, "
    "instance location, and any text present."
)
REASONING_ROLE = (
    "You are an excellent text-based reasoning expert. You are required to answer the question "
    "based on the detailed description of the image.\n\n"
)
THINKING_POST_PROMPT = (
    "\nPlease reason step by step, and give the final answer on the last line by itself in the "
    'format of "Answer:". Do not add anything other than the letter answer after "Answer:".'
)
NON_THINKING_POST_PROMPT = (
    '\nAnswer directly with the option\'s letter in the format of "Answer:". Do not add anything '
    'other than the letter answer after "Answer:".'
)
# Direct baseline: lmms-eval's MMStar post-prompt for LLaVA-style models.
DIRECT_POST_PROMPT = "\nAnswer with the option's letter from the given choices directly."
# `--hint auto`: one short call to the reasoning model, phrased like the paper's Qwen3-8B hints.
HINT_REQUEST = (
    "A vision model will describe an image so that a reader who cannot see it can answer a "
    'question. Write one short noun phrase (at most 15 words, starting with "the") naming what '
    "the description should pay attention to. Reply with the phrase only.\n\nQuestion: {question}"
)

ANSWER_PATTERN = re.compile(r"(?i)Answer\s*:\s*([^\n]+)")


@dataclass(frozen=True)
class PromptSet:
    """The templates a pipeline uses; a bundle's `prompts` section overrides any of them."""

    extraction_prefix: str = EXTRACTION_PREFIX
    caption: str = CAPTION_PROMPT
    reasoning_role: str = REASONING_ROLE
    thinking_post: str = THINKING_POST_PROMPT
    non_thinking_post: str = NON_THINKING_POST_PROMPT
    direct_post: str = DIRECT_POST_PROMPT
    hint_request: str = HINT_REQUEST

    @classmethod
    def from_overrides(cls, overrides: dict[str, str] | None) -> PromptSet:
        """Defaults with the given keys replaced; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (overrides or {}).items() if k in known})


def extraction_prompt(hint: str, prompts: PromptSet = PromptSet()) -> str:
    """Stage 1 request: the generic description plus the question-specific hint."""
    text = prompts.extraction_prefix + hint.strip()
    if not text.endswith("."):
        text += "."
    return text


def reasoning_prompt(
    description: str, question: str, *, step_by_step: bool, prompts: PromptSet = PromptSet()
) -> str:
    """Stage 2 request: role, description, question, and the post-prompt.

    `step_by_step` selects the thinking post-prompt (used for thinking models and,
    with a token limit, for instruct models asked to reason) over the direct one.
    """
    if not question.lower().startswith(("question:", "hint:")):
        question = "Question: " + question
    if not description.endswith("\n"):
        description += "\n"
    post = prompts.thinking_post if step_by_step else prompts.non_thinking_post
    return prompts.reasoning_role + "Description: " + description + question + post


def reasoning_heads(description: str, prompts: PromptSet = PromptSet()) -> tuple[str, str]:
    """The leading parts of `reasoning_prompt(description, ...)` that other requests share: the
    text before the description (every request), and that with the description (every question
    asked over the same description). A backend may keep their state between requests."""
    fixed = prompts.reasoning_role + "Description: "
    return fixed, fixed + (description if description.endswith("\n") else description + "\n")


def direct_prompt(question: str, prompts: PromptSet = PromptSet()) -> str:
    """The end-to-end baseline: the VLM answers the question itself."""
    return question + prompts.direct_post


def hint_request(question: str, prompts: PromptSet = PromptSet()) -> str:
    """The prompt that asks the reasoning model for a hint phrase (`--hint auto`)."""
    return prompts.hint_request.format(question=question)


def parse_answer(output: str) -> tuple[str, bool]:
    """The paper's parsing: the last line, `Answer: X` if it matches, else the line itself.

    Returns (answer, matched). Trailing whitespace is dropped first so that an output
    ending in a newline still has a last line; otherwise this is the authors' rule.
    """
    last_line = output.rstrip().split("\n")[-1]
    match = ANSWER_PATTERN.search(last_line)
    if match:
        return match.group(1).strip(), True
    return last_line.strip(), False


def clean_hint(generated: str) -> str:
    """First line of a generated hint, without quotes or a trailing period."""
    line = generated.strip().split("\n")[0].strip().strip('"').strip()
    return line.rstrip(".").strip()
