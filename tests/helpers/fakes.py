"""A scripted TextModel: deterministic logits per step, for testing generation without a model."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edge_et.backends.base import ContextFull, PromptStats, Sampling

VOCAB = [
    "<eos>",
    "\n",
    "</think>",
    "<think>",
    "a",
    "b",
    "Answer: B",
    " ",
    "Answer:",
    " B",
    " A",
    " 1",
]
EOS, NL, CLOSE, OPEN, A, B, ANSWER_B, SPACE, CUE, SPACE_B, SPACE_A, ONE = range(len(VOCAB))


class ScriptedModel:
    """`script(step, context)` returns the token whose logit is highest at each sampling step.

    Sampling is greedy over the (possibly edited) logits, so tests can see edits act.
    """

    def __init__(self, script: Callable[[int, list[int]], int], *, n_ctx: int = 10_000):
        self.script = script
        self.n_ctx = n_ctx
        self.load_s = 0.0
        self.chat_template = None
        self.bos_text = self.eos_text = ""
        self.media_marker = "<__media__>"
        self.context: list[int] = []
        self.steps = 0
        self.edited_logits: list[np.ndarray] = []

    def tokenize(self, *, text: str) -> list[int]:
        if text in VOCAB:
            return [VOCAB.index(text)]
        if text.startswith("\n") and text[1:] in VOCAB:  # the answer cue on its own line
            return [NL, VOCAB.index(text[1:])]
        return [A] * len(text)

    def piece(self, *, token: int) -> bytes:
        return VOCAB[token].encode()

    def is_end(self, *, token: int) -> bool:
        return token == EOS

    def start(self, *, prompt: str, image=None) -> PromptStats:
        self.context, self.steps = [A] * 3, 0
        return PromptStats(prompt_tokens=3, prefill_s=0.0)

    def append(self, *, tokens: Sequence[int]) -> None:
        self.context.extend(tokens)

    @property
    def tokens_in_context(self) -> int:
        return len(self.context)

    def sample(self, *, sampling: Sampling, edit=None) -> int:
        if len(self.context) >= self.n_ctx:
            raise ContextFull(self.n_ctx)
        self.steps += 1
        logits = np.full(len(VOCAB), -5.0, dtype=np.float32)
        logits[self.script(self.steps, self.context)] = 5.0
        logits[CLOSE] = 1.0 if logits[CLOSE] < 5 else logits[CLOSE]
        if edit is not None:
            edit(logits)
            self.edited_logits.append(logits.copy())
        return int(np.argmax(logits))

    def close(self) -> None:
        pass
