"""Token-by-token generation over any backend: limits, streaming, timing, budget forcing.

Budget forcing follows the authors' logits processor (lmms_eval_custom_files/qwen3.py,
after muellerzr's "end thinking" note). Counting generated tokens t = 1, 2, ... against
the think budget B:
- while t / B > 0.95, the logit of `</think>` is multiplied by (1 + t/B) and the logit
  of `\\n` is set to that same value (both boosted toward ending the thought);
- token t = B - 1 is forced to `\\n` and token t = B to `</think>`.
After `</think>` (the model's or the forced one) the answer follows; the whole output
never exceeds B + answer budget tokens, the authors' `max_new_tokens`.

A caller's stop strings end the reply (after `</think>` for a thinking model) before the first
of them, with the stop reason `stop_string` (runtime/stop_strings.py).
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from edge_et.backends.base import ContextFull, LogitEdit, Sampling, TextModel
from edge_et.core.decoding import JsonConstraint
from edge_et.core.stats import StageStats
from edge_et.errors import BundleError
from edge_et.runtime.stop_strings import StopStringReached, StopWatch

TextSink = Callable[[str], None]
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
BOOST_FROM = 0.95


@dataclass
class Generation:
    """Generated text and how generation ended (`eos`, `max_tokens`, `context_full`,
    `stop_string`)."""

    text: str
    stop_reason: str
    stats: StageStats = field(default_factory=StageStats)


class Stepper:
    """Samples or forces tokens one at a time, streaming text and adding up stats.

    With `stops`, a token whose text completes one raises StopStringReached once the watch is
    armed (`armed`, or `stops_begin()` when the reply begins); `finish()` passes on what was
    held back and gives the whole text.
    """

    def __init__(
        self,
        model: TextModel,
        sampling: Sampling,
        stats: StageStats,
        on_text: TextSink | None,
        ignore_eos: bool = False,
        stops: Sequence[str] = (),
        armed: bool = True,
    ):
        self.model, self.sampling, self.stats, self.on_text = model, sampling, stats, on_text
        self.ignore_eos = ignore_eos
        self._watch = StopWatch(stops, self._emit, armed)
        self._banned: set[int] = set()  # end tokens masked out when ignoring EOS (benchmarks)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[str] = []
        self.count = 0  # tokens produced, sampled and forced

    def sample(self, edit: LogitEdit | None = None) -> int | None:
        """Sample one token; None at end of generation (the end token is not kept)."""
        started = time.perf_counter()
        try:
            token = self.model.sample(sampling=self.sampling, edit=self._with_bans(edit))
            while self.ignore_eos and self.model.is_end(token=token):
                self._banned.add(token)  # fixed-length runs: never stop, sample again without it
                token = self.model.sample(sampling=self.sampling, edit=self._with_bans(edit))
        finally:
            self.stats.decode_s += time.perf_counter() - started
        if self.model.is_end(token=token):
            return None
        self.stats.generated_tokens += 1
        self._keep(token)
        return token

    def ban(self, token: int) -> None:
        """Never sample `token` again in this generation (fixed-length runs mask end tokens)."""
        self._banned.add(token)

    def _with_bans(self, edit: LogitEdit | None) -> LogitEdit | None:
        if not self._banned:
            return edit
        banned = list(self._banned)

        def masked(logits: np.ndarray) -> None:
            if edit is not None:
                edit(logits)
            logits[banned] = -np.inf

        return masked

    def force(self, token: int) -> None:
        self.stats.forced_tokens += 1
        self._keep(token)

    def _keep(self, token: int) -> None:
        self.count += 1
        self.model.append(tokens=[token])
        text = self._decoder.decode(self.model.piece(token=token))
        if text and self._watch.feed(text):
            raise StopStringReached

    def _emit(self, text: str) -> None:
        self._parts.append(text)
        if self.on_text:
            self.on_text(text)

    def stops_begin(self) -> None:
        """The reply begins: from here a stop string ends generation."""
        self._watch.armed = True

    def finish(self) -> str:
        """The whole text, once generation ended: an incomplete UTF-8 tail and the text held
        back as a possible stop string's start are passed on (unless a stop string ended it)."""
        if not self._watch.reached:
            tail = self._decoder.decode(b"", final=True)
            if not (tail and self._watch.feed(tail)):
                self._watch.release()
        return self.text

    @property
    def text(self) -> str:
        """The text passed on so far."""
        return "".join(self._parts)


def generate(
    model: TextModel,
    *,
    sampling: Sampling,
    max_tokens: int,
    on_text: TextSink | None = None,
    stats: StageStats | None = None,
    ignore_eos: bool = False,
    stops: Sequence[str] = (),
) -> Generation:
    """Sample up to `max_tokens` tokens after the prompt already fed with `model.start`.

    `ignore_eos` never lets the model stop early (fixed-length benchmark runs); the text ends
    before the first of `stops`.
    """
    stats = stats or StageStats()
    stepper = Stepper(model, sampling, stats, on_text, ignore_eos, stops)
    reason = _run(stepper, max_tokens)
    stats.stop_reason = reason
    return Generation(text=stepper.finish(), stop_reason=reason, stats=stats)


def _run(stepper: Stepper, max_tokens: int) -> str:
    try:
        while stepper.count < max_tokens:
            if stepper.sample() is None:
                return "eos"
        return "max_tokens"
    except ContextFull:
        return "context_full"
    except StopStringReached:
        return "stop_string"


@dataclass(frozen=True)
class ThinkTokens:
    """Ids of the single tokens budget forcing needs."""

    close: int
    newline: int

    @classmethod
    def of(cls, model: TextModel) -> ThinkTokens:
        close, newline = model.tokenize(text=THINK_CLOSE), model.tokenize(text="\n")
        if len(close) != 1 or len(newline) != 1:
            raise BundleError(
                f"the bundle marks the reasoning model as thinking, but {THINK_CLOSE!r} "
                f"and '\\n' are not single tokens in its vocabulary (got {close} and "
                f'{newline}); set "thinking": false in bundle.json'
            )
        return cls(close=close[0], newline=newline[0])


def boost_edit(ids: ThinkTokens, t: int, budget: int) -> LogitEdit:
    """The authors' boost for generated token number t (1-based) of the thinking budget."""
    factor = 1.0 + t / budget

    def edit(logits: np.ndarray) -> None:
        boosted = logits[ids.close] * factor
        logits[ids.newline] = boosted
        logits[ids.close] = boosted

    return edit


def think_then_answer(
    model: TextModel,
    *,
    sampling: Sampling,
    think_budget: int,
    answer_budget: int,
    on_text: TextSink | None = None,
    stats: StageStats | None = None,
    ignore_eos: bool = False,
    stops: Sequence[str] = (),
    answer_constraint: JsonConstraint | None = None,
) -> Generation:
    """Generate a thought of at most `think_budget` tokens, then the answer (see module doc).

    With `ignore_eos` the thought runs to the budget and the answer to its budget (benchmarks);
    the answer ends before the first of `stops` (the thought is never cut by them). With
    `answer_constraint` only the answer is constrained: the thought is free.
    """
    stats = stats or StageStats()
    ids = ThinkTokens.of(model)
    stepper = Stepper(model, sampling, stats, on_text, ignore_eos, stops, armed=False)
    try:
        closed, forced = _think(stepper, ids, max(2, think_budget))
    except ContextFull:
        return _finish(stepper, stats, "context_full", stepper.count, False)
    stats.think_tokens, stats.think_forced = stepper.count, forced
    if not closed:
        return _finish(stepper, stats, "eos", stepper.count, forced)
    stepper.stops_begin()
    if answer_constraint is not None:
        stepper.sampling = replace(sampling, constraint=answer_constraint)
    reason = _run(stepper, max(2, think_budget) + answer_budget)
    stats.stop_reason = reason
    return Generation(text=stepper.finish(), stop_reason=reason, stats=stats)


def _think(stepper: Stepper, ids: ThinkTokens, budget: int) -> tuple[bool, bool]:
    """Run the thinking phase. Returns (closed with </think>, closed by forcing).

    When ignoring EOS (fixed-length benchmarks) the model's own `</think>` is masked too,
    so the thought is exactly `budget` tokens long.
    """
    if stepper.ignore_eos:
        stepper.ban(ids.close)
    while True:
        t = stepper.count + 1
        if t == budget - 1:
            stepper.force(ids.newline)
            continue
        if t >= budget:
            stepper.force(ids.close)
            return True, True
        edit = boost_edit(ids, t, budget) if t / budget > BOOST_FROM else None
        token = stepper.sample(edit)
        if token is None:
            return False, False
        if token == ids.close:
            return True, False


def _finish(
    stepper: Stepper, stats: StageStats, reason: str, think_tokens: int, forced: bool
) -> Generation:
    stats.think_tokens, stats.think_forced = think_tokens, forced
    stats.stop_reason = reason
    return Generation(text=stepper.finish(), stop_reason=reason, stats=stats)
