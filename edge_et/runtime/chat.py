"""Conversations on a Pipeline: `Pipeline.chat(messages)` and `Conversation` (our extension of
the paper's single turn; docs/method.md, "Conversations"; the prompt layout is
edge_et.core.conversation).

- A user turn with no picture before it in the conversation is a text-only turn: the reasoning
  model answers the text itself (mode `chat`).
- A turn after a picture is about the most recent picture: its own question-guided extraction
  (the perception model; an earlier turn's extraction is reused when the assistant message
  carries it, else made again, which the image-embedding cache keeps from encoding the picture
  again), then the reasoning model over the conversation.
- The reasoner's prompt holds the system text, the earlier turns and the current turn's
  paper prompt, within its context: the oldest turns are dropped first until the prompt and the
  whole generation fit, and `Result.conversation` says how many were kept and dropped.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from edge_et.backends.base import TextModel
from edge_et.core import conversation, prompts
from edge_et.core.chat import render_chat
from edge_et.core.conversation import History, Turn
from edge_et.core.images import ImageInput, LoadedImage, as_loaded_image
from edge_et.core.stats import Result
from edge_et.errors import InputError
from edge_et.runtime.generation import THINK_CLOSE, THINK_OPEN
from edge_et.runtime.options import CHAT_MODE, RunOptions, merge_options

if TYPE_CHECKING:
    from edge_et.runtime.pipeline import Pipeline

ROLES = ("system", "developer", "user", "assistant")
# Tokens kept free beyond the generation: the BOS, a template's thinking switch.
MARGIN_TOKENS = 16
# extract(picture, question) -> the extraction text for an earlier turn
Extractor = Callable[[LoadedImage, str], str]


def reasoning_request(result: Result, prompt_set: prompts.PromptSet) -> str:
    """The current turn for the reasoner: the paper's prompt, or the text of a `chat` turn."""
    if result.mode == CHAT_MODE:
        return result.question
    return prompts.reasoning_prompt(
        result.extraction, result.question, step_by_step=True, prompts=prompt_set
    )


def fit_history(
    model: TextModel,
    history: History,
    request: str,
    *,
    need: int,
    thinking: bool | None,
    keep_prompt: bool = False,
) -> tuple[list[dict], dict]:
    """The reasoner's messages with as many of the latest earlier turns as fit its context
    together with `need` generated tokens, and what was kept ({"turns", "dropped"}, and the
    rendered "prompt" when `keep_prompt`). With no turn left the prompt is the current turn's
    alone; if even that does not fit, starting it says so (InputError)."""
    total = len(history.turns)
    for keep in range(total, -1, -1):
        messages = conversation.messages(history, request, keep=keep)
        prompt = render_chat(
            model.chat_template,
            messages,
            enable_thinking=thinking,
            bos_text=model.bos_text,
            eos_text=model.eos_text,
        )
        if len(model.tokenize(text=prompt)) + need + MARGIN_TOKENS <= model.n_ctx:
            break
    info = {"turns": keep, "dropped": total - keep}
    if keep_prompt:
        info["prompt"] = prompt
    return messages, info


@dataclass
class UserTurn:
    """A user turn of a conversation: its text, the picture it is about (None: text only),
    and the assistant's answer and the turn's extraction when the conversation holds them."""

    question: str
    picture: LoadedImage | None
    answer: str | None = None
    extraction: str | None = None


def split_messages(messages: Sequence[dict]) -> tuple[str | None, list[UserTurn], UserTurn]:
    """(system text, earlier user turns with their answers, the current turn) of `messages`:
    dicts with `role` (system, developer, user, assistant), `content` (text), and optionally
    `image` (user: any image form `run` takes) and `extraction` (assistant: the perception text
    of the turn it answers). InputError when the last message is not a user turn with text."""
    system: list[str] = []
    turns: list[UserTurn] = []
    picture: LoadedImage | None = None
    for index, message in enumerate(messages):
        role, text = message.get("role"), message.get("content") or ""
        if role not in ROLES:
            raise InputError(f"message {index}: unknown role {role!r}; roles: {', '.join(ROLES)}")
        if not isinstance(text, str):
            raise InputError(f"message {index}: content must be text")
        if role in ("system", "developer"):
            if text.strip():
                system.append(text)
        elif role == "user":
            if message.get("image") is not None:
                picture = as_loaded_image(message["image"])
            turns.append(UserTurn(question=text, picture=picture))
        elif turns:  # an assistant turn answers the user turn before it
            turns[-1].answer = text
            turns[-1].extraction = message.get("extraction") or turns[-1].extraction
    if not turns or messages[-1].get("role") != "user":
        raise InputError("the conversation must end with a user turn: it is the question")
    if not turns[-1].question.strip():
        raise InputError("the last user turn has no text: it is the question")
    return ("\n\n".join(system) or None), turns[:-1], turns[-1]


def run_chat(
    pipeline: Pipeline,
    messages: Sequence[dict],
    options: RunOptions,
    extract: Extractor | None = None,
) -> Result:
    """The answer to the last user turn of `messages` (see the module doc). `extract` makes an
    earlier turn's extraction (default: the pipeline's perception, extract mode)."""
    system, earlier, current = split_messages(messages)
    seed = options.seed if options.seed is not None else random.randrange(2**31)
    options = replace(options, seed=seed)
    history = history_of(system, earlier, extract or _perception_extractor(pipeline, options))
    return pipeline.run(current.picture, current.question, turn_options(options, current, history))


def history_of(system: str | None, earlier: Sequence[UserTurn], extract: Extractor) -> History:
    """The earlier turns as the reasoner sees them, each extraction made (`extract`) where the
    conversation does not carry it."""
    turns = []
    for turn in earlier:
        extraction = turn.extraction
        if turn.picture is not None and extraction is None:
            extraction = extract(turn.picture, turn.question)
        turns.append(
            Turn(
                question=turn.question,
                answer=turn.answer or "",
                extraction=extraction if turn.picture is not None else None,
            )
        )
    return History(system=system, turns=tuple(turns))


def turn_options(options: RunOptions, current: UserTurn, history: History | None) -> RunOptions:
    """`options` for the current turn: the `chat` mode when it has no picture, the history."""
    mode = options.mode if current.picture is not None else CHAT_MODE
    return replace(options, mode=mode, history=history)


def _perception_extractor(pipeline: Pipeline, options: RunOptions) -> Extractor:
    def extract(picture: LoadedImage, question: str) -> str:
        quiet = RunOptions(mode="extract", seed=options.seed, image_detail=options.image_detail)
        return pipeline.perceive(picture, question, quiet).extraction

    return extract


def reply_text(result: Result, thinking: bool) -> str:
    """What a user reads as the answer of `result`: the reasoner's text after its thought
    (its whole text when it does not think), or the perception text in extract/direct."""
    if result.reasoning is None:
        return result.extraction
    if not _has_thought(result, thinking):
        return result.reasoning.strip()
    _, closed, answer = result.reasoning.partition(THINK_CLOSE)
    return answer.strip() if closed else ""


def thought_text(result: Result, thinking: bool) -> str | None:
    """The thought of a thinking reasoner (without its tags), else None."""
    if result.reasoning is None or not _has_thought(result, thinking):
        return None
    thought = result.reasoning.partition(THINK_CLOSE)[0].strip()
    return thought.removeprefix(THINK_OPEN).strip()


def _has_thought(result: Result, thinking: bool) -> bool:
    """A thinking model wrote a thought (its think budget was above 0: at 0 the template writes
    an empty one into the prompt and the text is the answer alone)."""
    think = result.stages.get("think")
    return thinking and think is not None and think.think_tokens is not None


class Conversation:
    """Questions about one picture (or none), each answered with the earlier ones in view.

        with edge_et.open_pipeline("models/bundles/default") as pipeline:
            talk = edge_et.Conversation(pipeline, image="picture.png")
            first = talk.ask("What shapes are there?")
            second = talk.ask("And which one is green?")   # sees the first question and answer

    Nothing is reloaded between turns: the models stay loaded, the picture's embeddings and
    each turn's extraction are kept, so a follow-up costs its own extraction and reasoning.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        image: ImageInput | None = None,
        *,
        system: str | None = None,
        options: RunOptions | None = None,
    ):
        self.pipeline = pipeline
        self.options = options or RunOptions()
        self.messages: list[dict] = [{"role": "system", "content": system}] if system else []
        self._image = as_loaded_image(image) if image is not None else None

    @property
    def image(self) -> LoadedImage | None:
        """The picture the next turn is about (None: text only)."""
        return self._image

    def ask(self, question: str, image: ImageInput | None = None, **values) -> Result:
        """Answer `question` (about `image` from now on, if given; else the latest picture).
        `values` set RunOptions fields for this turn. Returns the turn's Result."""
        if image is not None:
            self._image = as_loaded_image(image)
        user = {"role": "user", "content": question}
        shown = any(m.get("image") is not None for m in self.messages)
        if self._image is not None and (image is not None or not shown):
            user["image"] = self._image  # the picture enters the conversation with this turn
        options = merge_options(self.options, values)
        result = self.pipeline.chat(self.messages + [user], options)
        thinking = bool(self.pipeline.bundle.reasoning and self.pipeline.bundle.reasoning.thinking)
        self.messages += [
            user,
            {
                "role": "assistant",
                "content": reply_text(result, thinking),
                "extraction": result.extraction or None,
            },
        ]
        return result
