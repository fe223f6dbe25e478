"""`edge-et bench`: per-stage latency and memory of Extract+Think on this device.

Warm-up, then N trials, each a fresh `edge-et run` as a user would start it: load the
perception model, extract, load the reasoning model, think. Generated lengths are fixed
from the settings with end-of-generation ignored, so every trial and every device does the
same work. Side by side in every trial:

- bare: the same token counts through the backend library's plain calls on the same loaded
  model (each backend's `bare_runner`): edge-et's overhead, goal <= 1.03;
- direct: the perception VLM answering alone: the latency price of Extract+Think;
- the memory-bandwidth limit: this machine's read bandwidth / bytes read per token.

The think stage reads a stand-in description of `extract_tokens` tokens (see
`edge_et.runtime.measure.stand_in_description`), not the VLM's text, so its prompt length is fixed too.

edge-et and bare runs alternate order from trial to trial (A B, B A, ...), so drift and
noise from other processes hit both alike; ratios are medians of per-trial ratios.
Then a thinking-budget curve: end-to-end latency against the think budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edge_et import backends
from edge_et.backends.stage_run import StageRequest, StageRun
from edge_et.bench.report import BenchReport, build_report
from edge_et.bench.settings import BenchSettings, Say, Trial
from edge_et.bundle.manifest import Bundle
from edge_et.core import prompts
from edge_et.core.decoding import stage_decoding
from edge_et.core.hints import hint_from_question
from edge_et.core.images import LoadedImage, load_image
from edge_et.errors import InputError
from edge_et.memory.probes import process_peak_rss
from edge_et.runtime.measure import (
    edge_stage,
    measure_bandwidth,
    open_model,
    render_prompt,
    reset_peak_rss,
    stand_in_description,
)
from edge_et.runtime.options import SEED_OFFSETS

# -- running ------------------------------------------------------------------------------------


def bench_steps(settings: BenchSettings) -> int:
    """How many progress lines a run says: bandwidth, each trial, each curve run."""
    curve = len(dict.fromkeys(settings.budgets)) * settings.curve_trials if settings.budgets else 0
    return (1 if settings.bandwidth_mib else 0) + settings.warmup + settings.trials + curve


# Relative work of a step, in generated-token equivalents, for a progress ETA from measured speed:
# a model load and an image encode each cost about as much as this many decoded tokens.
LOAD_UNITS, IMAGE_UNITS, BANDWIDTH_UNITS = 48, 96, 8


def step_weights(settings: BenchSettings) -> list[float]:
    """The work of each progress line, in order (len == bench_steps): the bar advances by these,
    so its ETA (measured units per second) holds when a trial and a curve run differ in size."""
    s = settings
    sides = 2 if s.bare else 1
    trial = (
        2 * LOAD_UNITS
        + IMAGE_UNITS * (2 if s.direct else 1)
        + sides * (s.extract_tokens + s.think_tokens + s.answer_tokens)
        + (s.direct_tokens if s.direct else 0)
    )
    weights = [float(BANDWIDTH_UNITS)] if s.bandwidth_mib else []
    weights += [float(trial)] * (s.warmup + s.trials)
    budgets = list(dict.fromkeys(s.budgets))
    for round_ in range(s.curve_trials if budgets else 0):
        shift = round_ % len(budgets)
        weights += [float(b + s.answer_tokens) for b in budgets[shift:] + budgets[:shift]]
    return weights


def run_bench(
    bundle: Bundle | str | Path,
    *,
    images: Sequence[str | Path | LoadedImage],
    trials: int = 5,
    warmup: int = 1,
    extract_tokens: int = 128,
    think_tokens: int = 256,
    answer_tokens: int = 32,
    progress: Say | None = None,
    **more,
) -> BenchReport:
    """Benchmark `bundle` on this device; `more` sets any other `BenchSettings` field.

    `images` rotate across trials (trial i uses image i mod len). `progress` receives one
    line as each step starts, `bench_steps(settings)` lines in all (the CLI's progress bar).
    """
    settings = BenchSettings(
        trials=trials,
        warmup=warmup,
        extract_tokens=extract_tokens,
        think_tokens=think_tokens,
        answer_tokens=answer_tokens,
        **more,
    )
    settings.check()
    loaded = load_benchable(bundle)
    pictures = load_pictures(images)
    say = progress or (lambda line: None)
    bandwidth = measure_bandwidth_step(settings, say)
    bench = TrialRunner(loaded, settings, pictures, say)
    for index in range(settings.warmup):
        bench.trial(index, label=f"warm-up {index + 1}/{settings.warmup}")
    runs = [
        bench.trial(settings.warmup + i, label=f"trial {i + 1}/{settings.trials}")
        for i in range(settings.trials)
    ]
    curve = bench.curve() if settings.budgets else {}
    return build_report(loaded, settings, runs, curve, bandwidth, stage_peaks=reset_peak_rss())


def load_benchable(bundle: Bundle | str | Path) -> Bundle:
    """The bundle, checked to have both stages."""
    loaded = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    loaded.require("perception")
    loaded.require("reasoning")
    return loaded


def load_pictures(images: Sequence[str | Path | LoadedImage]) -> list[LoadedImage]:
    if not images:
        raise InputError("the bench needs at least one image (--image or --images)")
    return [img if isinstance(img, LoadedImage) else load_image(img) for img in images]


def measure_bandwidth_step(settings: BenchSettings, say: Say) -> dict | None:
    if not settings.bandwidth_mib:
        return None
    say(f"measuring memory bandwidth ({settings.bandwidth_mib} MiB array)")
    return measure_bandwidth(array_mib=settings.bandwidth_mib, threads=settings.n_threads)


class TrialRunner:
    """Opens models and runs trials the way the pipeline runs a request."""

    def __init__(
        self, bundle: Bundle, settings: BenchSettings, images: list[LoadedImage], say: Say
    ):
        self.bundle, self.settings, self.images, self.say = bundle, settings, images, say
        self.prompts = prompts.PromptSet.from_overrides(bundle.prompts)

    def open(self, role: str, need: int):
        return open_model(
            self.bundle.require(role),
            need,
            self.settings.n_threads,
            n_gpu_layers=self.settings.gpu_layers,
        )

    def _reasoning_need(self, think: int) -> int:
        # Description (extract_tokens), the prompt around it, the thought and the answer.
        return self.settings.extract_tokens + 512 + think + self.settings.answer_tokens

    def trial(self, index: int, *, label: str) -> Trial:
        s = self.settings
        image = self.images[index % len(self.images)]
        self.say(f"{label}: {image.source}")
        run = Trial(image=image.source)
        reset_peak_rss()
        perception = self.open("perception", max(s.extract_tokens, s.direct_tokens) + 1536)
        try:
            run.load_s["perception"] = perception.load_s
            extract = self._extract(perception, image, index)
            run.edge["extract"], bare = self._pair("perception", perception, extract, index)
            run.peak_rss_bytes["extract"] = process_peak_rss()
            if bare is not None:
                run.bare["extract"] = bare
            if s.direct:
                reset_peak_rss()
                run.edge["direct"] = edge_stage(perception, self._direct(perception, image, index))
                run.peak_rss_bytes["direct"] = process_peak_rss()
            if s.residency == "swap":
                perception.close()
            self._think_part(run, index)
        finally:
            perception.close()  # a second close is a no-op
        return run

    def _think_part(self, run: Trial, index: int) -> None:
        reset_peak_rss()
        reasoning = self.open("reasoning", self._reasoning_need(self.settings.think_tokens))
        try:
            run.load_s["reasoning"] = reasoning.load_s
            description = stand_in_description(reasoning, self.settings.extract_tokens)
            request = self.think_request(description, self.settings.think_tokens, index)
            run.edge["think"], bare = self._pair("reasoning", reasoning, request, index)
            run.peak_rss_bytes["think"] = process_peak_rss()
            if bare is not None:
                run.bare["think"] = bare
        finally:
            reasoning.close()

    def _pair(
        self, role: str, model, request: StageRequest, index: int
    ) -> tuple[StageRun, StageRun | None]:
        """edge-et and bare on the same model, edge-et first in even trials, bare first in odd;
        edge-et alone where the backend has no comparable bare run (its `bare_runner`)."""
        backend = backends.get(self.bundle.require(role).backend)
        bare_run = backend.bare_runner(model, request) if self.settings.bare else None
        if bare_run is None:
            return edge_stage(model, request), None
        if index % 2 == 0:
            edge = edge_stage(model, request)
            return edge, bare_run(model, render_prompt(model, request), request)
        bare = bare_run(model, render_prompt(model, request), request)
        return edge_stage(model, request), bare

    # -- requests, built as the pipeline builds them --------------------------------------------

    def _seed(self, stage: str, index: int) -> int:
        return self.settings.seed + index + SEED_OFFSETS[stage]

    def _extract(self, model, image: LoadedImage, index: int) -> StageRequest:
        hint = hint_from_question(self.settings.question)
        content = model.media_marker + "\n" + prompts.extraction_prompt(hint, self.prompts)
        sampling = stage_decoding("extract", self.bundle.decoding).sampling(
            self._seed("extract", index)
        )
        return StageRequest(content, sampling, self.settings.extract_tokens, image=image)

    def _direct(self, model, image: LoadedImage, index: int) -> StageRequest:
        content = (
            model.media_marker + "\n" + prompts.direct_prompt(self.settings.question, self.prompts)
        )
        sampling = stage_decoding("direct", self.bundle.decoding).sampling(
            self._seed("direct", index)
        )
        return StageRequest(content, sampling, self.settings.direct_tokens, image=image)

    def think_request(self, description: str, budget: int, index: int) -> StageRequest:
        """The reasoning stage for `budget` think tokens (0: the template's no-thinking switch)."""
        content = prompts.reasoning_prompt(
            description.strip(), self.settings.question, step_by_step=True, prompts=self.prompts
        )
        answer = self.settings.answer_tokens
        if not self.bundle.reasoning.thinking:
            sampling = stage_decoding("reason", self.bundle.decoding).sampling(
                self._seed("think", index)
            )
            return StageRequest(content, sampling, budget + answer)
        sampling = stage_decoding("think", self.bundle.decoding).sampling(
            self._seed("think", index)
        )
        if budget == 0:
            return StageRequest(content, sampling, answer, thinking=False)
        return StageRequest(content, sampling, answer, thinking=True, think_budget=budget)

    def curve(self) -> dict[int, list[StageRun]]:
        """Think-stage runs per budget on one loaded model, budgets rotated per round."""
        budgets = list(dict.fromkeys(self.settings.budgets))
        model = self.open("reasoning", self._reasoning_need(max(budgets)))
        runs: dict[int, list[StageRun]] = {b: [] for b in budgets}
        try:
            description = stand_in_description(model, self.settings.extract_tokens)
            edge_stage(model, self.think_request(description, min(budgets), 0))  # warm-up
            for round_ in range(self.settings.curve_trials):
                shift = round_ % len(budgets)
                for budget in budgets[shift:] + budgets[:shift]:
                    self.say(
                        f"curve round {round_ + 1}/{self.settings.curve_trials}: budget {budget}"
                    )
                    runs[budget].append(
                        edge_stage(model, self.think_request(description, budget, round_))
                    )
        finally:
            model.close()
        return runs
