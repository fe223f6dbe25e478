"""Extract+Think and its baselines: one image and one question in, a `Result` out.

Modes:
- extract-think: the VLM describes what the question needs (hinted), the LLM reasons.
- caption-think: the VLM writes a generic description, the LLM reasons.
- direct: the VLM answers the question itself (the end-to-end baseline).
- extract: the VLM's question-specific description only.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import replace

from edge_et import backends
from edge_et.backends.base import CachesImages, TextModel
from edge_et.bundle.manifest import Bundle, StageSpec
from edge_et.core import prompts
from edge_et.core.chat import render_user_turn
from edge_et.core.decoding import JsonConstraint, StageDecoding, stage_decoding
from edge_et.core.hints import hint_from_question
from edge_et.core.images import ImageInput, LoadedImage, as_loaded_image
from edge_et.core.stats import Result, StageStats
from edge_et.errors import InputError
from edge_et.memory.probes import process_peak_rss
from edge_et.memory.scheduler import Plan
from edge_et.runtime import chat as conversations
from edge_et.runtime import reasoning
from edge_et.runtime.constraints import PERCEPTION_REPLIES, check_constraint
from edge_et.runtime.generation import TextSink, generate
from edge_et.runtime.image_detail import look
from edge_et.runtime.models import ModelSource, OwnModels, stage_settings
from edge_et.runtime.options import (  # noqa: F401 - re-exported: edge_et.runtime.pipeline is where callers find them
    CHAT_MODE,
    MODES,
    SEED_OFFSETS,
    RunOptions,
    check_image_detail,
    check_mode,
    check_text,
    merge_options,
)
from edge_et.runtime.plan import DEFAULT_CTX, check_reasoning_fits
from edge_et.runtime.serial import ModelLock, serialized
from edge_et.runtime.stop_strings import check_stops
from edge_et.runtime.stream import Event, stream_run

PERCEPTION_CTX, REASONING_CTX = DEFAULT_CTX["perception"], DEFAULT_CTX["reasoning"]


def check_bundle_for_mode(bundle: Bundle, mode: str) -> None:
    """One line naming the missing stage, before any image is read or model loaded."""
    bundle.require("perception")
    if check_mode(mode).endswith("-think"):
        bundle.require("reasoning")


RESIDENCIES = ("co-resident", "swap")


class Pipeline:
    """Runs requests on one bundle.

    residency "co-resident" keeps each model loaded after first use; "swap" frees the
    other model before loading one, so only one is in memory at a time. With a memory
    `plan` (edge_et.memory.scheduler) each stage gets the plan's context, KV type, GPU layers and
    image bound, and the residency follows the plan's decision unless one is given.

    A pipeline may be shared by threads: calls on its models run one at a time (serial.py).
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        n_threads: int | None = None,
        residency: str | None = None,
        plan: Plan | None = None,
        device: str | None = None,
        image_cache_bytes: int | None = None,
        models: ModelSource | None = None,
    ):
        residency = residency or _residency_of(plan)
        if residency not in RESIDENCIES:
            raise InputError(
                f"unknown residency {residency!r}; choose one of: {', '.join(RESIDENCIES)}"
            )
        self.bundle = bundle
        self.prompts = prompts.PromptSet.from_overrides(bundle.prompts)
        self.residency = residency
        self.plan = plan
        self.model_loads = 0
        self._encodes_before = 0  # image encodes of perception models already freed (swap)
        self._n_threads = n_threads
        self._device = device  # for backends that take an execution provider (None: their default)
        self._image_cache_bytes = image_cache_bytes  # None: the backend's own bound
        self._models: dict[str, TextModel] = {}
        self.model_lock = ModelLock()
        self._source = (
            models or OwnModels()
        )  # a server of many bundles shares one (runtime/models.py)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @serialized
    def close(self) -> None:
        """Free every loaded model now."""
        for role in list(self._models):
            self.release(role)

    @serialized
    def load(self, roles: list[str] | None = None) -> None:
        """Load the models now instead of at the first request (a server's start-up). Under
        swap only the perception model: every request needs it first. `roles` picks the
        models (a Ray worker serves one stage). Raises ModelLoadError, MissingExtra."""
        roles = roles or [spec.role for spec in self.bundle.stages()]
        for role in roles[:1] if self.residency == "swap" else roles:
            self._model(role, StageStats())

    @property
    def loaded_roles(self) -> list[str]:
        """The roles whose model is in memory now."""
        return list(self._models)

    def model(self, role: str) -> TextModel | None:
        """The loaded model of `role` ("perception" or "reasoning"), or None when it is not in
        memory now (not used yet, or freed under swap). For measurements beside the pipeline
        (benchmarks, bench); a run loads what it needs by itself."""
        return self._models.get(role)

    @serialized
    def release(self, role: str) -> None:
        """Free one model now (its memory returns before the next load)."""
        model = self._models.pop(role, None)
        if model is not None:
            self._encodes_before += model.image_encodes if isinstance(model, CachesImages) else 0
            self._source.close(self.bundle.require(role), model)

    @serialized
    def forget_image(self, picture: LoadedImage) -> None:
        """No later request shows `picture`: its cached embeddings need not take memory."""
        model = self._models.get("perception")
        if isinstance(model, CachesImages):
            model.forget_images(picture.sha256)

    @property
    def image_encodes(self) -> int:
        """Images the vision encoder actually ran on (embedding-cache hits excluded)."""
        model = self._models.get("perception")
        return self._encodes_before + (
            model.image_encodes if isinstance(model, CachesImages) else 0
        )

    # -- models ---------------------------------------------------------------------------

    def _model(self, role: str, stats: StageStats) -> TextModel:
        if role not in self._models:
            if self.residency == "swap":
                for other in [r for r in self._models if r != role]:
                    self.release(other)
            spec = self.bundle.require(role)
            model, load_s = self._source.open(spec, self._stage_settings(spec), self._n_threads)
            self._models[role] = model
            if load_s is not None:  # None: a shared model that was already loaded
                self.model_loads += 1
                stats.load_s = load_s
        return self._models[role]

    def _stage_settings(self, spec: StageSpec) -> dict:
        return stage_settings(
            self.bundle,
            spec,
            self.plan,
            n_threads=self._n_threads,
            device=self._device,
            image_cache_bytes=self._image_cache_bytes,
        )

    def check_fits(self, options: RunOptions) -> None:
        """InputError (one line, naming the limit) when `options` raise the reasoning stage's
        need past the context its model is planned with; a server calls it before queueing."""
        if not _reasons(options.mode) or self.bundle.reasoning is None:
            return
        spec = self.bundle.reasoning
        check_reasoning_fits(
            self._stage_settings(spec)["n_ctx"],
            self.bundle.decoding,
            spec.thinking,
            reasoning.reasoning_flags(options),
        )

    def check_options(self, options: RunOptions) -> None:
        """Everything about `options` that can be refused before a request is queued, in one
        line (InputError): its budgets (check_fits), its image detail, and a JSON constraint
        that the reply's backend cannot apply or compile."""
        check_image_detail(options.image_detail)
        mode = options.mode if options.mode == CHAT_MODE else check_mode(options.mode)
        check_constraint(self.bundle, mode, options.constraint)
        self.check_fits(options)

    # -- one request ----------------------------------------------------------------------

    @serialized
    def chat(self, messages: Sequence[dict], options: RunOptions | None = None, **values) -> Result:
        """Answer the last user turn of a conversation (our extension: runtime/chat.py).
        `messages`: dicts with `role` and `content`, a user turn's `image`, an assistant turn's
        `extraction`; a conversation with no picture yet is answered by the reasoner alone."""
        return conversations.run_chat(self, messages, merge_options(options, values))

    def run(
        self,
        image: ImageInput,
        question: str,
        options: RunOptions | None = None,
        *,
        wait: bool = True,
        **values,
    ) -> Result:
        """Answer `question` about `image` in `options.mode`.

        Another thread's call on this pipeline finishes first; with `wait=False` a busy
        pipeline raises PipelineBusy instead. The same request gives the same result whatever
        ran before it (with a seed: byte for byte).

        Args:
            image: a path, bytes, a PIL image, a numpy array or a `LoadedImage`.
            question: the question; options (A. ..., B. ...) may follow on new lines.
            options: a `RunOptions`; keyword `values` set (or override) its fields, e.g.
                `seed=0, mode="direct"`.
            wait: wait for another thread's call on this pipeline (False: PipelineBusy).

        Returns:
            The `Result`: answer, extraction, reasoning and per-stage `StageStats`.

        Raises:
            InputError: an unreadable image, an empty question, an unknown mode or option
                value, or budgets that do not fit the reasoning context.
            BundleError: the bundle lacks the stage the mode needs.
            ModelLoadError: a model file failed to load (changed since it was checked).
            MissingExtra: the backend's package is not installed.
            PipelineBusy: `wait=False` and another thread is using the pipeline.
        """
        options = merge_options(options, values)
        check_stops(options.stop)
        with self.model_lock.held(wait=wait):
            result = self.perceive(image, question, options)
            if _reasons(result.mode):
                self.reason(result, options)
        return result

    def stream(
        self,
        image: ImageInput,
        question: str,
        options: RunOptions | None = None,
        *,
        wait: bool = True,
        **values,
    ) -> Iterator[Event]:
        """`run`, yielding events as they happen.

        Args and raised kinds: as `run` (raised from the iterator; the run starts when
        iteration does, so PipelineBusy with `wait=False` is raised then).

        Returns:
            An iterator of ExtractionText, ReasoningText and StageFinished events, and
            Finished(result) last. Closing it stops the run at its next token.
        """
        return stream_run(
            lambda hooked: self.run(image, question, hooked, wait=wait),
            merge_options(options, values),
        )

    @serialized
    def perceive(
        self, image: ImageInput | None, question: str, options: RunOptions = RunOptions()
    ) -> Result:
        """Stage 1: everything the VLM does for this mode (the whole run for direct/extract).

        Returns the `Result` so far (extraction, hint, perception stats); for a -think mode,
        `reason(result)` completes it. Raises as `run`.
        """
        seed = options.seed if options.seed is not None else random.randrange(2**31)
        if options.mode == CHAT_MODE:  # a conversation's text-only turn: nothing to look at
            check_text(question)
            self.bundle.require("reasoning")
            return Result(mode=CHAT_MODE, question=question, seed=seed)
        mode = check_mode(options.mode)
        check_text(question, options.hint)
        check_bundle_for_mode(self.bundle, mode)
        check_constraint(self.bundle, mode, options.constraint)
        picture = self._look(_load(image), check_image_detail(options.image_detail))
        result = Result(
            mode=mode,
            question=question,
            image=picture.source,
            seed=seed,
            image_detail=picture.detail,
        )
        if mode == "direct":
            text = self._perceive(
                picture, prompts.direct_prompt(question, self.prompts), "direct", result, options
            )
            result.answer, result.answer_matched = prompts.parse_answer(text)
        elif mode == "caption-think":
            self._perceive(picture, self.prompts.caption, "caption", result, options)
        else:
            self._choose_hint(question, result, options)
            request = prompts.extraction_prompt(result.hint, self.prompts)
            self._perceive(picture, request, "extract", result, options)
        result.peak_rss_bytes = process_peak_rss()
        return result

    @serialized
    def reason(self, result: Result, options: RunOptions = RunOptions()) -> Result:
        """Stage 2 of the -think modes: the reasoning model answers from `result.extraction`.

        Returns `result`, completed (reasoning, answer, the `think` stage's stats). Raises
        InputError for budgets that do not fit, BundleError without a reasoning stage.
        """
        self._reason(result, options)
        result.peak_rss_bytes = process_peak_rss()
        return result

    @serialized
    def reason_over(
        self, description: str, question: str, options: RunOptions = RunOptions()
    ) -> Result:
        """Stage 2 alone: the reasoning model answers from a given description (mode `think`).

        Returns a new `Result` of mode `think`. Raises InputError for an empty question or
        description, BundleError without a reasoning stage.
        """
        check_text(question, description)
        self.bundle.require("reasoning")
        seed = options.seed if options.seed is not None else random.randrange(2**31)
        result = Result(mode="think", question=question, extraction=description, seed=seed)
        return self.reason(result, options)

    def _look(self, picture: LoadedImage, detail: str) -> LoadedImage:
        """The picture at `detail` (runtime/image_detail.py)."""
        if detail != "low":
            return picture
        spec = self.bundle.require("perception")
        return look(picture, detail, backends.get(spec.backend).vision_shape(spec))

    def _choose_hint(self, question: str, result: Result, options: RunOptions) -> None:
        if options.hint is not None and options.hint.strip().lower() != "auto":
            result.hint, result.hint_source = options.hint.strip(), "flag"
            return
        if options.hint is not None:
            hint = self._ask_hint(question, result)
            _finished(options, "hint", result)
            if hint:
                result.hint, result.hint_source = hint, "auto"
                return
        result.hint, result.hint_source = hint_from_question(question), "question-rule"

    @serialized
    def ask(
        self,
        role: str,
        request: str,
        *,
        settings: StageDecoding,
        seed: int,
        stats: StageStats,
        image: LoadedImage | None = None,
        on_text: TextSink | None = None,
        stops: Sequence[str] = (),
        constraint: JsonConstraint | None = None,
    ) -> str:
        """One user turn of the caller's own to the `role` model; returns the generated text.

        With `image` (perception) the picture comes first, as in every perception request;
        without one, a thinking model answers with its thinking switched off. The modes'
        perception stages and the hint use it, and so do data tools (extraction targets).
        """
        model = self._model(role, stats)
        if image is None:
            reasoning.start_turn(
                model,
                request,
                stats,
                thinking=False if self.bundle.require(role).thinking else None,
            )
        else:
            prompt = render_user_turn(
                model.chat_template,
                model.media_marker + "\n" + request,
                bos_text=model.bos_text,
                eos_text=model.eos_text,
            )
            begun = model.start(prompt=prompt, image=image)
            stats.prompt_tokens, stats.prefill_s = begun.prompt_tokens, begun.prefill_s
            stats.image_encode_s = begun.image_encode_s
            stats.image_cached = begun.image_cached
        sampling = replace(settings.sampling(seed), constraint=constraint)
        return generate(
            model,
            sampling=sampling,
            max_tokens=settings.max_tokens,
            on_text=on_text,
            stats=stats,
            stops=stops,
        ).text

    def _ask_hint(self, question: str, result: Result) -> str:
        text = self.ask(
            "reasoning",
            prompts.hint_request(question, self.prompts),
            settings=stage_decoding("hint", self.bundle.decoding),
            seed=result.seed + SEED_OFFSETS["hint"],
            stats=result.stages.setdefault("hint", StageStats()),
        )
        return prompts.clean_hint(text)

    def _perceive(
        self, picture: LoadedImage, request: str, stage: str, result: Result, options: RunOptions
    ) -> str:
        text = self.ask(
            "perception",
            request,
            image=picture,
            settings=stage_decoding(stage, self.bundle.decoding),
            seed=result.seed + SEED_OFFSETS[stage],
            stats=result.stages.setdefault(stage, StageStats()),
            on_text=options.on_extraction_text,
            # direct and extract: the perception text is the reply the stops end
            stops=check_stops(options.stop) if stage == result.mode else (),
            constraint=options.constraint if stage in PERCEPTION_REPLIES else None,
        )
        result.extraction = text.strip()
        _finished(options, stage, result)
        return text

    def _reason(self, result: Result, options: RunOptions) -> None:
        stats = result.stages.setdefault("think", StageStats())
        reasoning.answer(
            self._model("reasoning", stats),
            bundle=self.bundle,
            prompt_set=self.prompts,
            result=result,
            options=options,
            stats=stats,
            perception=self._models.get("perception"),
        )
        _finished(options, "think", result)


def _reasons(mode: str) -> bool:
    """Whether `mode` has a reasoning stage (the -think modes, a conversation's text turn)."""
    return mode == CHAT_MODE or check_mode(mode).endswith("-think")


def _residency_of(plan: Plan | None) -> str:
    if plan is None:
        return "co-resident"
    if plan.decision == "gpu-split":
        return plan.host_residency or "co-resident"
    return plan.decision if plan.decision in RESIDENCIES else "co-resident"


def _finished(options: RunOptions, stage: str, result: Result) -> None:
    if options.on_stage_finished is not None:
        options.on_stage_finished(stage, result.stages[stage])


def _load(image: ImageInput | None) -> LoadedImage:
    if image is None:
        raise InputError("this mode needs an image (--image PATH)")
    return as_loaded_image(image)
