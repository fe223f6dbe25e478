"""What a caller sets for one run (`RunOptions`) and the one-line checks of it, before any
image is read or model loaded."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable, Sequence

from edge_et.core.stats import StageStats
from edge_et.errors import InputError
from edge_et.runtime.generation import TextSink

MODES = ("extract-think", "caption-think", "direct", "extract")


@dataclass
class RunOptions:
    """What a caller may set for one run; None means the bundle's or the paper's default."""

    mode: str = "extract-think"
    hint: str | None = None            # text, "auto", or None for the question rule (hints.py)
    seed: int | None = None            # None: a fresh random seed, reported in the result
    think_budget: int | None = None
    answer_budget: int | None = None
    max_tokens: int | None = None      # reasoning limit for non-thinking models
    temperature: float | None = None   # reasoning stage
    speculative: str | None = None     # auto | off | lookup | draft (runtime/speculation.py)
    stop: Sequence[str] | str | None = None  # the reply ends before the first (runtime/stop_strings.py)
    # Multiple choice: a reply whose last line names no option gets one constrained letter
    # (runtime/answer_cue.py force_letter). None: the bundle's `answer.force_letter` (default off).
    force_letter: bool | None = None
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
            raise InputError(f"the text holds {text[exc.start]!a}, which is not a character (an "
                             f"unpaired surrogate, or a byte that is not UTF-8)") from None


def merge_options(options: RunOptions | None, values: dict) -> RunOptions:
    """`options` (or the defaults) with keyword values on top; an unknown name is an InputError."""
    names = [item.name for item in fields(RunOptions)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r}; options: {', '.join(names)}")
    base = options if options is not None else RunOptions()
    return replace(base, **values) if values else base


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    return mode
