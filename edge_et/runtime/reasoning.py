"""Stage 2: the reasoning model answers from the description.

The -think modes, `think` (a given description) and a conversation's turns end here. A
thinking model thinks within its budget and then answers (generation.py); a plain one reasons
step by step and gets the answer cue (answer_cue.py). Our extensions keep the paper's
single-turn run as it is: a JSON constraint makes the reply the JSON itself (no cue after it),
a conversation's history is fitted in front of the request (chat.py), and the forced letter
is opt-in.
"""

from __future__ import annotations

from dataclasses import replace

from edge_et.backends.base import HeadReuse, TextModel
from edge_et.bundle.manifest import Bundle, StageSpec
from edge_et.core import prompts
from edge_et.core.chat import render_chat
from edge_et.core.choices import question_options
from edge_et.core.decoding import StageDecoding, stage_decoding
from edge_et.core.stats import Result, StageStats
from edge_et.runtime import chat as conversations
from edge_et.runtime.answer_cue import force_letter, reason_with_answer_cue
from edge_et.runtime.generation import generate, think_then_answer
from edge_et.runtime.options import CHAT_MODE, SEED_OFFSETS, RunOptions
from edge_et.runtime.plan import reasoning_generation
from edge_et.runtime.speculation import choose_drafter, record_counts, speculate
from edge_et.runtime.stop_strings import check_stops


def answer(
    model: TextModel,
    *,
    bundle: Bundle,
    prompt_set: prompts.PromptSet,
    result: Result,
    options: RunOptions,
    stats: StageStats,
    perception: TextModel | None = None,
) -> None:
    """Fill `result`'s reasoning and answer from its extraction (or a conversation's turn).

    `perception`: the loaded perception model, which speculative decoding may draft with.
    """
    spec = bundle.require("reasoning")
    request = conversations.reasoning_request(result, prompt_set)
    heads = (
        () if result.mode == CHAT_MODE else prompts.reasoning_heads(result.extraction, prompt_set)
    )
    if options.history is not None and not options.history.empty:
        request, result.conversation = conversations.fit_history(
            model,
            options.history,
            request,
            thinking=spec.thinking or None,
            need=reasoning_generation(bundle.decoding, spec.thinking, reasoning_flags(options)),
            keep_prompt=options.return_prompt,
        )
    speculate(model, *choose_drafter(options.speculative, model, perception), stats)
    turn = _Turn(model, bundle, result, options, stats)
    try:
        out = turn.think(spec, request, heads) if spec.thinking else turn.reason(request, heads)
        forced = (
            options.force_letter
            if options.force_letter is not None
            else bundle.answer.get("force_letter", False)
        )  # opt-in (runtime/answer_cue.py)
        if forced and options.constraint is None:  # a JSON reply gets no letter after it
            settings = turn.settings("think" if spec.thinking else "reason")
            out += force_letter(
                model,
                out,
                options=question_options(result.question),
                sampling=settings.sampling(turn.seed),
                stats=stats,
                on_text=options.on_reasoning_text,
            )
    finally:
        record_counts(model, stats)
    result.reasoning = out
    result.answer, result.answer_matched = prompts.parse_answer(out)


def reasoning_flags(options: RunOptions) -> dict:
    """The caller's overrides of the reasoning stage's decoding (core/decoding.stage_decoding)."""
    return {
        "budget": options.think_budget,
        "answer_budget": options.answer_budget,
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
    }


def start_turn(
    model: TextModel,
    request: str | list[dict],
    stats: StageStats,
    *,
    thinking: bool | None,
    heads: tuple[str, ...] = (),
) -> None:
    """Feed `request` (one user turn, or a conversation's messages: runtime/chat.py) in the
    model's chat template. `heads`: texts the prompt's last turn starts with that other
    requests share; a model that keeps their state (HeadReuse) skips them."""
    messages = [{"role": "user", "content": request}] if isinstance(request, str) else request
    prompt = render_chat(
        model.chat_template,
        messages,
        enable_thinking=thinking,
        bos_text=model.bos_text,
        eos_text=model.eos_text,
    )
    rendered = _rendered_heads(prompt, heads)
    if rendered and isinstance(model, HeadReuse):
        begun = model.start_with_heads(prompt=prompt, heads=rendered)
    else:
        begun = model.start(prompt=prompt)
    stats.prompt_tokens += begun.prompt_tokens
    stats.prefill_s += begun.prefill_s


class _Turn:
    """One reasoning reply: the model, the request's options and where its numbers go."""

    def __init__(
        self,
        model: TextModel,
        bundle: Bundle,
        result: Result,
        options: RunOptions,
        stats: StageStats,
    ):
        self.model, self.bundle, self.options, self.stats = model, bundle, options, stats
        self.question = result.question
        self.seed = result.seed + SEED_OFFSETS["think"]

    def settings(self, stage: str) -> StageDecoding:
        return stage_decoding(stage, self.bundle.decoding, reasoning_flags(self.options))

    def think(self, spec: StageSpec, request: str | list[dict], heads: tuple[str, ...]) -> str:
        """A thinking model: the thought within its budget, then the answer."""
        settings, options = self.settings("think"), self.options
        sampling = settings.sampling(self.seed)
        if settings.budget == 0:
            # No thinking at all: the template's own switch writes an empty thought.
            start_turn(self.model, request, self.stats, thinking=False, heads=heads)
            return generate(
                self.model,
                sampling=replace(sampling, constraint=options.constraint),
                max_tokens=settings.answer_budget,
                on_text=options.on_reasoning_text,
                stats=self.stats,
                stops=check_stops(options.stop),
            ).text
        start_turn(self.model, request, self.stats, thinking=True, heads=heads)
        return think_then_answer(
            self.model,
            sampling=sampling,
            think_budget=settings.budget,
            answer_budget=settings.answer_budget,
            on_text=options.on_reasoning_text,
            stats=self.stats,
            stops=check_stops(options.stop),
            answer_constraint=options.constraint,
        ).text

    def reason(self, request: str | list[dict], heads: tuple[str, ...]) -> str:
        """A plain model: step by step, then the answer cue (or the JSON reply alone)."""
        settings, options = self.settings("reason"), self.options
        start_turn(self.model, request, self.stats, thinking=None, heads=heads)
        if options.constraint is not None:  # the reply is the JSON: no answer cue after it
            return generate(
                self.model,
                sampling=replace(settings.sampling(self.seed), constraint=options.constraint),
                max_tokens=settings.max_tokens,
                on_text=options.on_reasoning_text,
                stats=self.stats,
                stops=check_stops(options.stop),
            ).text
        return reason_with_answer_cue(
            self.model,
            sampling=settings.sampling(self.seed),
            max_tokens=settings.max_tokens,
            answer_budget=settings.answer_budget,
            on_text=options.on_reasoning_text,
            stats=self.stats,
            stops=check_stops(options.stop),
            letters="".join(question_options(self.question)),
        ).text


def _rendered_heads(prompt: str, heads: tuple[str, ...]) -> tuple[str, ...]:
    """The prompt up to the end of each head (the template's text before them included); none
    where the template changed the request's text."""
    at = prompt.find(heads[-1]) if heads else -1
    return tuple(prompt[: at + len(head)] for head in heads) if at >= 0 else ()
