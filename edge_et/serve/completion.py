"""A run's result as OpenAI chat completion JSON: the whole response, or streamed chunks.

`message.content` is what the reasoning model wrote after its thought (the whole text for a
model that does not think, the perception text in the `extract` and `direct` modes);
`reasoning_content` (and `reasoning`, the name some clients read) is the thought; `extraction`
is the perception model's text. `edge_et` carries the parsed answer, `timings` each stage's cost.
"""

from __future__ import annotations

import time
import uuid

import edge_et
from edge_et.runtime.generation import THINK_CLOSE, THINK_OPEN
from edge_et.runtime.stop_strings import partial_stop_length

CUT = ("max_tokens", "context_full")  # stop reasons that cut the text: OpenAI's "length"


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


class ThoughtSplitter:
    """Splits a thinking model's text, piece by piece, into thought and answer at `</think>`.
    A tag cut across pieces is held back until it is whole, so no half tag reaches a client."""

    def __init__(self, thinking: bool):
        self._in_thought = thinking
        self._thinking = thinking
        self._held = ""
        self._answer_begun = False

    def _answer(self, text: str) -> str:
        # The new lines after `</think>` are layout, as in split_thought's strip().
        if self._thinking and not self._answer_begun:
            text = text.lstrip()
            self._answer_begun = bool(text)
        return text

    def feed(self, piece: str) -> tuple[str, str]:
        """(thought, answer) text that this piece completes."""
        if not self._in_thought:
            return "", self._answer(piece)
        text = self._held + piece
        self._held = ""
        if THINK_CLOSE in text:
            thought, _, answer = text.partition(THINK_CLOSE)
            self._in_thought = False
            return _without_open_tag(thought), self._answer(answer)
        keep = partial_stop_length(text, (THINK_CLOSE,))
        self._held = text[len(text) - keep :] if keep else ""
        return _without_open_tag(text[: len(text) - keep]), ""


def split_thought(text: str | None, thinking: bool) -> tuple[str | None, str]:
    """(thought, answer) of a whole reasoning text."""
    if text is None:
        return None, ""
    if not thinking:
        return None, text
    thought, closed, answer = text.partition(THINK_CLOSE)
    if not closed:  # ended inside the thought (EOS or context full): no answer text
        return _without_open_tag(thought).strip(), ""
    return _without_open_tag(thought).strip(), answer.strip()


def message(result: edge_et.Result, thinking: bool) -> dict:
    if result.reasoning is None:  # extract and direct: the perception text is the reply
        return {
            "role": "assistant",
            "content": result.extraction,
            "reasoning_content": None,
            "reasoning": None,
            "extraction": result.extraction,
        }
    thought, answer = split_thought(result.reasoning, thinking)
    return {
        "role": "assistant",
        "content": answer,
        "reasoning_content": thought,
        "reasoning": thought,
        "extraction": result.extraction if result.mode != "chat" else None,
    }


def finish_reason(result: edge_et.Result, cached_stop: str | None = None) -> str:
    """OpenAI's `finish_reason` of the reply's `content`: "length" when a token limit
    (max_tokens, the answer budget, the context) cut the stage that wrote it, else "stop".
    `cached_stop`: the stop reason of an extraction taken from the cache."""
    # extract and direct: the perception text is the reply
    stage = "think" if result.reasoning is not None else result.mode
    stats = result.stages.get(stage)
    stop = stats.stop_reason if stats else cached_stop
    return "length" if stop in CUT else "stop"


def usage(result: edge_et.Result) -> dict:
    prompt = sum(stats.prompt_tokens for stats in result.stages.values())
    completion = sum(
        stats.generated_tokens + stats.forced_tokens for stats in result.stages.values()
    )
    think = result.stages.get("think")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "completion_tokens_details": {
            "reasoning_tokens": (think.think_tokens or 0) if think else 0
        },
    }


def timings(result: edge_et.Result, queue_s: float, extraction_cached: bool) -> dict:
    stages = {name: stats.to_dict() for name, stats in result.stages.items()}
    return {"queue_s": round(queue_s, 6), "extraction_cached": extraction_cached, "stages": stages}


def extension(
    result: edge_et.Result, picture: edge_et.LoadedImage, extraction_cached: bool
) -> dict:
    perception = [s for s in result.stages.values() if s.image_cached is not None]
    return {
        "mode": result.mode,
        "answer": result.answer,
        "answer_matched": result.answer_matched,
        "hint": result.hint,
        "hint_source": result.hint_source,
        "seed": result.seed,
        "image_sha256": picture.sha256 if picture is not None else None,
        "extraction_cached": extraction_cached,
        "image_cached": bool(perception and perception[0].image_cached) or extraction_cached,
        "image_detail": result.image_detail,
        "conversation": result.conversation,
    }


def completion(
    *,
    id: str,
    model: str,
    result: edge_et.Result,
    thinking: bool,
    picture,
    queue_s: float,
    extraction_cached: bool,
    cached_stop: str | None = None,
) -> dict:
    return {
        "id": id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message(result, thinking),
                "finish_reason": finish_reason(result, cached_stop),
                "logprobs": None,
            }
        ],
        "usage": usage(result),
        "timings": timings(result, queue_s, extraction_cached),
        "edge_et": extension(result, picture, extraction_cached),
    }


def chunk(
    *,
    id: str,
    model: str,
    created: int,
    delta: dict | None = None,
    finish_reason: str | None = None,
    **extra,
) -> dict:
    """One `chat.completion.chunk`; `delta=None` with `usage` in `extra` is the usage chunk."""
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
    )
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }


def _without_open_tag(text: str) -> str:
    stripped = text.lstrip()
    return stripped[len(THINK_OPEN) :] if stripped.startswith(THINK_OPEN) else text
