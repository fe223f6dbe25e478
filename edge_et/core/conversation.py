"""Conversations: earlier turns as the reasoning model's chat messages (our extension).

The paper's method is single turn: one picture, one question, one extraction, one reasoning
prompt. edge-et extends it to conversations (docs/method.md, "Conversations"):

- every user turn about a picture gets its own question-guided extraction;
- the reasoning model sees the earlier turns in its own chat template: each earlier user turn
  as `Description: <its extraction>` + `Question: <its question>` (the paper's reasoning
  prompt without the role and post-prompt, which the current turn carries), or the question
  alone for a text-only turn, and its own earlier answer as the assistant turn;
- the current turn is the paper's reasoning prompt exactly (or, text only, the question);
- `system` messages come first, as the template places them.

A conversation without system messages and earlier turns is the paper's single turn, prompt for
prompt. Pure functions: the runtime (edge_et.runtime.chat) measures and renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Turn:
    """One earlier exchange.

    question: the user's text. extraction: what the perception model wrote for it (None: a
    text-only turn, no picture yet). answer: the assistant's reply as the client shows it (the
    thought of a thinking model left out, as its templates drop it from history).
    """

    question: str
    answer: str
    extraction: str | None = None


@dataclass(frozen=True)
class History:
    """What came before the current turn: system text and earlier turns, oldest first."""

    system: str | None = None
    turns: tuple[Turn, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.system and not self.turns


def turn_text(turn: Turn) -> str:
    """An earlier user turn as the reasoning model sees it."""
    if turn.extraction is None:
        return turn.question
    description = turn.extraction if turn.extraction.endswith("\n") else turn.extraction + "\n"
    question = turn.question
    if not question.lower().startswith(("question:", "hint:")):
        question = "Question: " + question
    return "Description: " + description + question


def messages(history: History | None, request: str, *, keep: int | None = None) -> list[dict]:
    """Chat messages for the reasoning model: system, the last `keep` earlier turns (all when
    None), then `request` (the current turn's prompt)."""
    out: list[dict] = []
    if history is not None and history.system:
        out.append({"role": "system", "content": history.system})
    turns = history.turns if history is not None else ()
    if keep is not None:
        turns = turns[len(turns) - keep :] if keep > 0 else ()
    for turn in turns:
        out.append({"role": "user", "content": turn_text(turn)})
        out.append({"role": "assistant", "content": turn.answer})
    out.append({"role": "user", "content": request})
    return out
