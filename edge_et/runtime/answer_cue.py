"""The non-thinking analogue of budget forcing: an answer cue when the reasoning names no answer.

A thinking model's answer always gets its turn: budget forcing closes the thought and the
answer budget follows (edge_et.runtime.generation). An instruct model asked to reason step by
step has no such boundary. When it stops (or runs out of `max_tokens`) without a last line
`Answer: X`, the paper's parse reads its last line, and a user sees no answer. Measured on
Qwen2.5-Coder-1.5B over held-out scenes, such endings were a LaTeX `\\boxed{A}` or "the answer
is: A" without an `Answer:` line; none had reached the token limit, which the cue covers too
(docs/answer-cue.md).

So, only then: the cue `Answer:` is appended on a line of its own, as forced tokens, the
format the paper's post-prompt asks for, and the model decodes at most the answer budget,
stopping at the end of that line so it stays the last line the parser reads. Output that
already ends in a parsable answer is returned untouched, byte for byte.
"""

from __future__ import annotations

from typing import Sequence

from edge_et.backends.base import ContextFull, Sampling, TextModel
from edge_et.core.prompts import parse_answer
from edge_et.core.stats import StageStats
from edge_et.runtime.generation import Generation, TextSink, Stepper, generate

ANSWER_CUE = "Answer:"


def reason_with_answer_cue(model: TextModel, *, sampling: Sampling, max_tokens: int,
                           answer_budget: int, on_text: TextSink | None = None,
                           stats: StageStats | None = None, stops: Sequence[str] = ()) -> Generation:
    """Reason for at most `max_tokens`; cue the answer if the output's last line names none.

    A reply the caller's stop string ended is the reply they asked for: it gets no cue."""
    stats = stats or StageStats()
    reasoning = generate(model, sampling=sampling, max_tokens=max_tokens, on_text=on_text,
                         stats=stats, stops=stops)
    stats.answer_cued = False
    if reasoning.stop_reason in ("context_full", "stop_string") or parse_answer(reasoning.text)[1]:
        return reasoning
    return cue_answer(model, reasoning, sampling=sampling, answer_budget=answer_budget,
                      on_text=on_text, stats=stats)


def cue_answer(model: TextModel, reasoning: Generation, *, sampling: Sampling, answer_budget: int,
               on_text: TextSink | None, stats: StageStats) -> Generation:
    """Append the cue after `reasoning` (already in the model's context) and decode the answer line."""
    stats.answer_cued = True
    cue = Stepper(model, sampling, stats, on_text)
    # An end token right after the cue would leave `Answer:` empty (SmolLM2 does this): the
    # answer's first text is sampled with end tokens masked, the rest as usual.
    opening = Stepper(model, sampling, stats, on_text, ignore_eos=True)
    rest = Stepper(model, sampling, stats, on_text)
    try:
        for token in model.tokenize(text=cue_text(reasoning.text)):
            cue.force(token)
        while not opening.text.strip() and opening.count < answer_budget:
            opening.sample()
        reason = _answer_line(rest, opening.text, answer_budget - opening.count)
    except ContextFull:
        reason = "context_full"
    stats.stop_reason = worst_stop(reasoning.stop_reason, reason)
    return Generation(text=reasoning.text + cue.finish() + opening.finish() + rest.finish(),
                      stop_reason=reason, stats=stats)


def worst_stop(reasoning: str, answer: str) -> str:
    """The stage's stop reason: a limit that cut the reasoning before its cue still cut it."""
    for limit in ("context_full", "max_tokens"):
        if limit in (reasoning, answer):
            return limit
    return answer


def cue_text(reasoning: str) -> str:
    """The cue on a line of its own: a newline first unless the reasoning already ends a line."""
    return ANSWER_CUE if reasoning == "" or reasoning.endswith("\n") else "\n" + ANSWER_CUE


def _answer_line(stepper: Stepper, opening: str, budget: int) -> str:
    """Sample until the answer line (begun with `opening`) ends, the model stops, or `budget` is spent.

    A newline before any answer text does not end the line: `Answer:\\nB` still reads as B.
    """
    while True:
        if "\n" in (opening + stepper.text).lstrip():
            return "answer_line"
        if stepper.count >= budget:
            return "max_tokens"
        if stepper.sample() is None:
            return "eos"
