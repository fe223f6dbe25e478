"""The arithmetic of a multiple-choice evaluation: letters, accuracy, Wilson intervals, medians.

Pure functions over `Scored` rows, so the numbers can be tested on scripted results.

Scoring rule: the pipeline's answer is the paper's parse of the last line (`Answer: X`, else
the line itself; core/prompts.py); it counts as option letter L by edge_et.core.choices
(answer_letter: L standing alone as a letter, not the first character of a sentence).
Anything else is a parse failure: it is counted, and it is wrong.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from edge_et.core.choices import answer_letter  # noqa: F401  (re-exported: scorers read it here)

Z_95 = 1.959963984540054  # two-sided 95% normal quantile
NO_CATEGORY = "(none)"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # option letters, in order


@dataclass(frozen=True)
class Scored:
    """One question's outcome in one mode.

    letter: the option letter read from the answer, None when the answer names no option.
    error: why the question produced no answer at all (bad line, unreadable image); such
        rows are reported and left out of the accuracy.
    stage_s: seconds per stage for this question (model loads excluded).
    """

    id: object
    category: str
    gold: str
    letter: str | None = None
    n_options: int = 4
    error: str | None = None
    stage_s: dict[str, float] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return self.error is None and self.letter == self.gold


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there are no trials.

    Chosen over the normal approximation because it stays inside [0, 1] and behaves at
    0% and 100%, which small evaluations hit.
    """
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Accuracy:
    """Accuracy over the answered questions of one group, with its 95% Wilson interval.

    chance: the expected accuracy of guessing uniformly among each question's options.
    """

    correct: int
    scored: int
    parse_failures: int
    errors: int
    chance: float | None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.scored if self.scored else None

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.scored)

    def to_dict(self) -> dict:
        low, high = self.ci95
        return {
            "accuracy": _r(self.accuracy),
            "ci95": [_r(low), _r(high)],
            "correct": self.correct,
            "scored": self.scored,
            "parse_failures": self.parse_failures,
            "errors": self.errors,
            "chance": _r(self.chance),
        }


def accuracy(rows: list[Scored]) -> Accuracy:
    """Correct / scored; errored rows are only counted, parse failures count as wrong."""
    answered = [row for row in rows if row.error is None]
    chance = sum(1 / row.n_options for row in answered) / len(answered) if answered else None
    return Accuracy(
        correct=sum(row.correct for row in answered),
        scored=len(answered),
        parse_failures=sum(row.letter is None for row in answered),
        errors=len(rows) - len(answered),
        chance=chance,
    )


def by_category(rows: list[Scored]) -> dict[str, Accuracy]:
    """Accuracy per category, categories in sorted order."""
    groups: dict[str, list[Scored]] = {}
    for row in rows:
        groups.setdefault(row.category or NO_CATEGORY, []).append(row)
    return {name: accuracy(groups[name]) for name in sorted(groups)}


def stage_medians(rows: list[Scored]) -> dict[str, float]:
    """Median seconds per stage over answered questions, and `question`: the median total."""
    answered = [row for row in rows if row.error is None and row.stage_s]
    stages = sorted({name for row in answered for name in row.stage_s})
    medians = {
        name: statistics.median(row.stage_s[name] for row in answered if name in row.stage_s)
        for name in stages
    }
    if answered:
        medians["question"] = statistics.median(sum(row.stage_s.values()) for row in answered)
    return {name: round(value, 4) for name, value in medians.items()}


def stage_seconds(stages: dict[str, dict]) -> dict[str, float]:
    """Per-stage seconds from a Result's serialised stage stats: encode + prefill + decode.

    Model loads are left out: they are paid once per run, not per question.
    """
    return {
        name: (s.get("image_encode_s") or 0.0)
        + (s.get("prefill_s") or 0.0)
        + (s.get("decode_s") or 0.0)
        for name, s in stages.items()
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
