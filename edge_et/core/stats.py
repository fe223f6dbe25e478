"""Per-stage measurements and the result of one request, serialisable to JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class StageStats:
    """What one stage cost. Times in seconds, measured with time.perf_counter."""

    load_s: float = 0.0  # model (and mmproj) load; 0 when it was already resident
    image_encode_s: float | None = None  # vision encoder + projector; perception stages only
    image_cached: bool | None = None  # perception: embeddings reused from an earlier question
    prompt_tokens: int = 0  # tokens fed before the first generated one (image tokens included)
    prefill_s: float = 0.0  # time to feed them, image encode excluded
    generated_tokens: int = 0  # tokens sampled by the model
    forced_tokens: int = (
        0  # tokens inserted, not sampled: budget forcing's `\n</think>`, the answer cue
    )
    decode_s: float = 0.0  # time spent sampling and feeding generated tokens
    think_tokens: int | None = None  # thinking models: tokens inside <think>…</think>
    think_forced: bool | None = None  # thinking models: whether the budget ended the thinking
    answer_cued: bool | None = (
        None  # instruct reasoners: whether `Answer:` was cued (runtime/answer_cue.py)
    )
    # A cued or forced answer was limited to the question's option letters (True), or the
    # question had options the reasoner's vocabulary cannot write as single tokens (False:
    # free text, as without options); None when no answer was cued or the question had none.
    answer_constrained: bool | None = None
    letter_forced: bool | None = None  # the opt-in forced letter was added (answer.force_letter)
    speculative: str | None = None  # reasoning: the drafter used (lookup, draft) or off
    drafted_tokens: int | None = None  # speculative decoding: tokens drafted and verified
    accepted_tokens: int | None = None  # drafted tokens the target kept (each saved a decode)
    # How generation ended: eos (the model ended it), answer_line (the cued answer's line
    # ended), max_tokens (a token limit cut it), context_full, stop_string (a caller's stop
    # string ended the reply: runtime/stop_strings.py). Budget forcing's forced end
    # of a thought is the method, not a cut; a reasoning cut before its answer cue is.
    stop_reason: str | None = None

    @property
    def decode_tok_s(self) -> float | None:
        return self.generated_tokens / self.decode_s if self.decode_s > 0 else None

    @property
    def prefill_tok_s(self) -> float | None:
        return self.prompt_tokens / self.prefill_s if self.prefill_s > 0 else None

    @classmethod
    def from_dict(cls, data: dict) -> StageStats:
        """The stats `to_dict` wrote (its derived rates are recomputed, not read)."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    def to_dict(self) -> dict:
        data = asdict(self)
        data["decode_tok_s"] = _round(self.decode_tok_s)
        data["prefill_tok_s"] = _round(self.prefill_tok_s)
        return {k: _round(v) for k, v in data.items()}


@dataclass
class Result:
    """The outcome of one question about one image.

    mode: extract-think | caption-think | direct | extract; chat: a conversation's text-only
        turn, answered by the reasoning model alone (runtime/chat.py).
    answer: parsed with the paper's rule (empty in `extract` mode).
    answer_matched: whether the last line matched `Answer: X` (False: the raw last line was used).
    hint: the extraction hint used (None for modes without one) and hint_source
        (`flag`, `question-rule`, `auto`).
    extraction: the perception model's description (or direct answer text in `direct`).
    reasoning: the reasoning model's full output (thinking included), None without stage 2.
    stages: StageStats per stage name (`hint`, `extract`, `caption`, `direct`, `think`).
    peak_rss_bytes: peak resident memory of this process so far.
    deadline: with `run --deadline`: the think budget chosen for it and the worst case
        expected from this device's measured speed (see edge_et.runtime.deadline).
    conversation: a turn of a conversation (runtime/chat.py): `turns` earlier turns the
        reasoner saw, `dropped` the oldest ones left out to fit its context, `prompt` its
        rendered prompt when asked for (RunOptions.return_prompt).
    image_detail: the detail the perception model looked at the picture with (low, high).
    """

    mode: str
    question: str
    answer: str = ""
    answer_matched: bool = False
    hint: str | None = None
    hint_source: str | None = None
    extraction: str = ""
    reasoning: str | None = None
    stages: dict[str, StageStats] = field(default_factory=dict)
    peak_rss_bytes: int = 0
    image: str | None = None
    seed: int | None = None
    deadline: dict | None = None
    conversation: dict | None = None
    image_detail: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        """The Result `to_dict` wrote, e.g. an extraction saved for a resumed run's reasoning."""
        fields = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        fields["stages"] = {
            name: StageStats.from_dict(stats) for name, stats in (data.get("stages") or {}).items()
        }
        return cls(**fields)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["stages"] = {name: stats.to_dict() for name, stats in self.stages.items()}
        return data


def _round(value):
    return round(value, 6) if isinstance(value, float) else value
