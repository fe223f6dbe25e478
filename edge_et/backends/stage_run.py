"""A stage run with a fixed generated length and what it measured: what `edge-et bench` hands
a backend's bare baseline and gets back, and what its edge-et runs return too."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_et.core.decoding import Sampling
from edge_et.core.images import LoadedImage


@dataclass(frozen=True)
class StageRequest:
    """One stage to run with a fixed generated length (end-of-generation ignored).

    content: the user turn, with the model's media marker first when `image` is set.
    thinking: the chat template's thinking switch (None: the template's default).
    think_budget: thinking models: run `think_then_answer` with this budget and `tokens`
        as the answer budget; None: plain generation of `tokens`.
    """

    content: str
    sampling: Sampling
    tokens: int
    image: LoadedImage | None = None
    thinking: bool | None = None
    think_budget: int | None = None

    @property
    def requested(self) -> int:
        """Tokens the stage must produce: budget forcing makes a thought exactly its budget."""
        return (max(2, self.think_budget) if self.think_budget else 0) + self.tokens


@dataclass
class StageRun:
    """One timed run of a stage. Times in seconds from the start of the stage request.

    prefill_s: feeding the prompt, image encode excluded; None on the bare image path, where
        mtmd's helper encodes and feeds in one call (`ttft_s` covers both there).
    ttft_s: request to first generated token (template, encode, prefill, first sample).
    decode_s: first to last generated token; `decode_tok_s` counts the tokens after the first.
    tokens: generated tokens, sampled and forced; `requested` what the stage asked for.
    """

    prompt_tokens: int = 0
    image_encode_s: float | None = None
    prefill_s: float | None = None
    ttft_s: float = 0.0
    decode_s: float = 0.0
    tokens: int = 0
    requested: int = 0
    e2e_s: float = 0.0
    stop_reason: str = ""
    text: str = field(default="", repr=False)

    @property
    def decode_tok_s(self) -> float | None:
        return (self.tokens - 1) / self.decode_s if self.tokens > 1 and self.decode_s > 0 else None

    @property
    def prefill_tok_s(self) -> float | None:
        return self.prompt_tokens / self.prefill_s if self.prefill_s else None

    def metrics(self) -> dict[str, float | None]:
        """The numbers a report summarizes (text left out)."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "image_encode_s": self.image_encode_s,
            "prefill_s": self.prefill_s,
            "prefill_tok_s": self.prefill_tok_s,
            "ttft_s": self.ttft_s,
            "decode_s": self.decode_s,
            "decode_tok_s": self.decode_tok_s,
            "tokens": self.tokens,
            "requested": self.requested,
            "e2e_s": self.e2e_s,
        }
