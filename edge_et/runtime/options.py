"""What a caller sets for one run (`RunOptions`) and the one-line checks of it, before any
image is read or model loaded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

from edge_et.core.conversation import History
from edge_et.core.decoding import JsonConstraint
from edge_et.core.stats import StageStats
from edge_et.errors import InputError
from edge_et.runtime.generation import TextSink

MODES = ("extract-think", "caption-think", "direct", "extract")
# A text-only turn (no picture in the conversation yet): the reasoning model answers the user's
# text itself. Only conversations produce it (runtime/chat.py); `run --mode` does not offer it.
CHAT_MODE = "chat"
IMAGE_DETAILS = ("auto", "low", "high")
# Each stage samples from its own seed, so adding a stage does not change the others' draws.
SEED_OFFSETS = {"hint": 1, "extract": 2, "caption": 2, "direct": 2, "think": 3}


@dataclass
class RunOptions:
    """What a caller may set for one run; None means the bundle's or the paper's default."""

    mode: str = "extract-think"
    hint: str | None = None  # text, "auto", or None for the question rule (hints.py)
    seed: int | None = None  # None: a fresh random seed, reported in the result
    think_budget: int | None = None
    answer_budget: int | None = None
    max_tokens: int | None = None  # reasoning limit for non-thinking models
    temperature: float | None = None  # reasoning stage
    speculative: str | None = None  # auto | off | lookup | draft (runtime/speculation.py)
    stop: Sequence[str] | str | None = (
        None  # the reply ends before the first (runtime/stop_strings.py)
    )
    # Multiple choice: a reply whose last line names no option gets one constrained letter
    # (runtime/answer_cue.py force_letter). None: the bundle's `answer.force_letter` (default off).
    force_letter: bool | None = None
    # The reply must be JSON (under a schema): the reasoner's answer after its thought, or the
    # perception text in extract/direct (runtime/constraints.py).
    constraint: JsonConstraint | None = None
    image_detail: str = "auto"  # low | high | auto (runtime/image_detail.py)
    history: History | None = None  # earlier turns of a conversation (runtime/chat.py)
    return_prompt: bool = False  # keep the reasoner's rendered prompt in Result.conversation
    on_reasoning_text: TextSink | None = None
    on_extraction_text: TextSink | None = None
    on_stage_finished: Callable[[str, StageStats], None] | None = None  # (stage, its stats)


def check_text(question: str, *texts: str | None) -> None:
    """InputError in one line for an empty question, or text a tokenizer cannot take: a lone
    surrogate (`\\ud800`, which a JSON escape can hold) has no UTF-8 form."""
    if not question or not question.strip():
        raise InputError("the question is empty")
    for text in (question, *texts):
        try:
            (text or "").encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(
                f"the text holds {text[exc.start]!a}, which is not a character (an "
                f"unpaired surrogate, or a byte that is not UTF-8)"
            ) from None


def merge_options(options: RunOptions | None, values: dict) -> RunOptions:
    """`options` (or the defaults) with keyword values on top; an unknown name is an InputError."""
    names = [item.name for item in fields(RunOptions)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r}; options: {', '.join(names)}")
    base = options if options is not None else RunOptions()
    return replace(base, **values) if values else base


def check_image_detail(detail: str) -> str:
    if detail not in IMAGE_DETAILS:
        raise InputError(
            f"unknown image detail {detail!r}; choose one of: {', '.join(IMAGE_DETAILS)}"
        )
    return detail


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    return mode
