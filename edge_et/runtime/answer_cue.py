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

When the question lists options (core/choices.py), the cued answer is one of their letters:
its one token is sampled with every other token's logit masked (a logit edit, which every
backend's `sample` takes), so a reasoning cut short cannot end in "Answer: 1" for option
"A. 1". A reasoner whose vocabulary has no single token for some letter gets the free answer
line as before, and the stage says so (`answer_constrained` false).

`force_letter` is the opt-in (bundle `answer.force_letter`, RunOptions.force_letter) for a
reply that did end in an answer line naming no option ("Answer: None"): a second cue on a
new line and one constrained letter, which then is the last line the parser reads. Off by
default: the paper's parse of what the reasoner wrote stays the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edge_et.backends.base import ContextFull, LogitEdit, Sampling, TextModel
from edge_et.core.choices import answer_letter
from edge_et.core.prompts import parse_answer
from edge_et.core.stats import StageStats
from edge_et.runtime.generation import Generation, Stepper, TextSink, generate

ANSWER_CUE = "Answer:"


def reason_with_answer_cue(
    model: TextModel,
    *,
    sampling: Sampling,
    max_tokens: int,
    answer_budget: int,
    on_text: TextSink | None = None,
    stats: StageStats | None = None,
    stops: Sequence[str] = (),
    letters: str = "",
) -> Generation:
    """Reason for at most `max_tokens`; cue the answer if the output's last line names none.

    letters: the question's option letters ("ABCD"; "" when it lists none), which the cued
    answer is limited to. A reply the caller's stop string ended is the reply they asked
    for: it gets no cue."""
    stats = stats or StageStats()
    reasoning = generate(
        model, sampling=sampling, max_tokens=max_tokens, on_text=on_text, stats=stats, stops=stops
    )
    stats.answer_cued = False
    if reasoning.stop_reason in ("context_full", "stop_string") or parse_answer(reasoning.text)[1]:
        return reasoning
    return cue_answer(
        model,
        reasoning,
        sampling=sampling,
        answer_budget=answer_budget,
        on_text=on_text,
        stats=stats,
        letters=letters,
    )


def cue_answer(
    model: TextModel,
    reasoning: Generation,
    *,
    sampling: Sampling,
    answer_budget: int,
    on_text: TextSink | None,
    stats: StageStats,
    letters: str = "",
) -> Generation:
    """Append the cue after `reasoning` (already in the model's context) and decode the answer
    line: one of `letters` where the model's vocabulary allows it, else free text."""
    stats.answer_cued = True
    mask = _letters_mask(model, letters, stats)
    if mask is not None:
        try:
            added = _letter_after_cue(model, reasoning.text, mask, sampling, stats, on_text)
            reason = "answer_line"
        except ContextFull:
            added, reason = "", "context_full"
        stats.stop_reason = worst_stop(reasoning.stop_reason, reason)
        return Generation(text=reasoning.text + added, stop_reason=reason, stats=stats)
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
    return Generation(
        text=reasoning.text + cue.finish() + opening.finish() + rest.finish(),
        stop_reason=reason,
        stats=stats,
    )


def force_letter(
    model: TextModel,
    text: str,
    *,
    options: Mapping[str, str],
    sampling: Sampling,
    stats: StageStats,
    on_text: TextSink | None = None,
) -> str:
    """The opt-in forced letter: when the reply `text` (in the model's context) ends without
    naming one of `options`' letters, a new `Answer:` line with one constrained letter.

    Returns the text added ("" when the reply already names an option, the question lists
    none, the vocabulary cannot write the letters, or the context is full)."""
    letters = "".join(options)
    if (
        not letters
        or answer_letter(parse_answer(text)[0], letters, options) is not None
        or stats.stop_reason in ("context_full", "stop_string")
    ):
        return ""
    mask = _letters_mask(model, letters, stats)
    if mask is None:
        return ""
    try:
        added = _letter_after_cue(model, text, mask, sampling, stats, on_text)
    except ContextFull:
        return ""
    stats.letter_forced = True
    return added


def letter_tokens(model: TextModel, letters: str) -> list[int] | None:
    """The tokens that write each of `letters` alone (" B" or "B"); None when some letter has
    no such single token in the model's vocabulary (then no answer can be limited to them)."""
    found: list[int] = []
    for letter in letters:
        ids = [
            tokens[0]
            for tokens in (model.tokenize(text=" " + letter), model.tokenize(text=letter))
            if len(tokens) == 1
            and model.piece(token=tokens[0]).decode("utf-8", "replace").strip() == letter
        ]
        if not ids:
            return None
        found += [token for token in ids if token not in found]
    return found


def _letters_mask(model: TextModel, letters: str, stats: StageStats) -> LogitEdit | None:
    """A logit edit that leaves only `letters`' tokens; None (stated in `stats`) if not possible."""
    if not letters:
        return None
    allowed = letter_tokens(model, letters)
    stats.answer_constrained = allowed is not None
    if allowed is None:
        return None
    index = np.array(allowed)

    def only_letters(logits: np.ndarray) -> None:
        kept = logits[index].copy()
        logits[:] = -np.inf
        logits[index] = kept

    return only_letters


def _letter_after_cue(
    model: TextModel,
    text: str,
    mask: LogitEdit,
    sampling: Sampling,
    stats: StageStats,
    on_text: TextSink | None,
) -> str:
    """Force the cue on a line of its own after `text`, sample one letter token under `mask`."""
    stepper = Stepper(model, sampling, stats, on_text)
    for token in model.tokenize(text=cue_text(text)):
        stepper.force(token)
    stepper.sample(mask)
    return stepper.finish()


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
