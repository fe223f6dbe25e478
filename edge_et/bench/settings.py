"""What one bench run does (BenchSettings) and what one trial measured (Trial)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from edge_et.backends.stage_run import StageRun
from edge_et.core.images import SAMPLE_QUESTION
from edge_et.errors import InputError
from edge_et.runtime.pipeline import RESIDENCIES

DEFAULT_BUDGETS = (0, 256, 1024, 4096)
DEFAULT_TRIALS, DEFAULT_WARMUP, DEFAULT_CURVE_TRIALS = 5, 1, 3
CURVE_STEP = 4  # the curve's budgets: 0, then think tokens x 1, x 4, x 16
Say = Callable[[str], None]


@dataclass(frozen=True)
class BenchSettings:
    """What one bench run does. Token counts are exact: EOS is ignored.

    think_tokens: the reasoning stage's think budget (thinking models) or the tokens before
        the answer (instruct reasoners, which then generate think + answer tokens).
    budgets: think budgets of the curve (empty: no curve); curve_trials runs of each.
    bandwidth_mib: array size of the bandwidth measurement (0: skip it).
    """

    trials: int = 5
    warmup: int = 1
    extract_tokens: int = 128
    think_tokens: int = 256
    answer_tokens: int = 32
    direct_tokens: int = 16
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    curve_trials: int = 3
    question: str = SAMPLE_QUESTION
    seed: int = 0
    n_threads: int | None = None
    gpu_layers: int = 0  # layers each model offloads to the GPU (llama.cpp GPU builds; -1: all)
    residency: str = "co-resident"
    bare: bool = True
    direct: bool = True
    bandwidth_mib: int = 256

    def check(self) -> None:
        if self.trials < 1 or self.warmup < 0 or self.curve_trials < 1:
            raise InputError("--trials and curve trials must be >= 1, --warmup >= 0")
        if (
            min(self.extract_tokens, self.answer_tokens, self.direct_tokens) < 1
            or self.think_tokens < 0
        ):
            raise InputError("token counts must be >= 1 (think tokens >= 0)")
        if any(b < 0 for b in self.budgets):
            raise InputError("think budgets must be >= 0")
        if self.residency not in RESIDENCIES:
            raise InputError(
                f"unknown residency {self.residency!r}; choose one of: {', '.join(RESIDENCIES)}"
            )


@dataclass
class Trial:
    """One trial: edge-et runs per stage, the bare runs beside them, loads and peaks."""

    image: str
    edge: dict[str, StageRun] = field(default_factory=dict)
    bare: dict[str, StageRun] = field(default_factory=dict)
    load_s: dict[str, float] = field(default_factory=dict)  # by role
    peak_rss_bytes: dict[str, int] = field(default_factory=dict)  # by stage

    def to_dict(self) -> dict:
        runs = {
            side: {k: v.metrics() for k, v in getattr(self, side).items()}
            for side in ("edge", "bare")
        }
        return {
            "image": self.image,
            "load_s": self.load_s,
            "peak_rss_bytes": self.peak_rss_bytes,
            **runs,
        }


# -- defaults that fit the run asked for ---------------------------------------------------------


def curve_for(think_tokens: int, *, quick: bool = False) -> tuple[int, ...]:
    """The curve's budgets around the think budget asked: 0, t, 4t, 16t (256 gives the
    historical 0,256,1024,4096); `quick`: 0 and t only. No think tokens: no curve."""
    if think_tokens <= 0:
        return ()
    if quick:
        return (0, think_tokens)
    return (0,) + tuple(think_tokens * CURVE_STEP**k for k in range(3))


def fitted_defaults(
    *,
    think_tokens: int,
    trials: int | None = None,
    warmup: int | None = None,
    budgets: tuple[int, ...] | None = None,
    curve_trials: int | None = None,
    quick: bool = False,
) -> dict:
    """trials, warmup, budgets and curve_trials for a bench run: what was given, else defaults
    scaled to the run asked for, so a short run stays short (`--trials 1 --think-tokens 8` is
    no 20-minute curve). `quick`: one trial, no warm-up, a two-point curve of one round."""
    trials = trials if trials is not None else (1 if quick else DEFAULT_TRIALS)
    warmup = warmup if warmup is not None else (0 if quick else DEFAULT_WARMUP)
    budgets = budgets if budgets is not None else curve_for(think_tokens, quick=quick)
    if curve_trials is None:
        curve_trials = 1 if quick else min(DEFAULT_CURVE_TRIALS, trials)
    return {"trials": trials, "warmup": warmup, "budgets": budgets, "curve_trials": curve_trials}
