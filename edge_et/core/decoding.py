"""Decoding settings per stage: the paper's defaults, then the bundle's, then the caller's.

Defaults (docs/method.md, and the authors' lmms-eval setup):
- extract / caption / direct (the VLM): greedy, at most 1024 tokens (lmms-eval's default
  for LLaVA-OneVision generation).
- think (thinking models): temperature 0.6, top-p 0.95, top-k 20 (Qwen3's
  generation_config, which the authors' `generate` call inherits), think budget 4096 +
  answer budget 1024.
- reason (instruct models without a thinking mode, asked to reason step by step):
  temperature 0.7, top-p 0.8, top-k 20, at most 1024 tokens; when they end without an
  `Answer:` line, the answer cue and at most 16 answer tokens (runtime/answer_cue.py: the
  answer is one letter on one line, so the thinking models' 1024 would only allow rambling).
- hint (`--hint auto`): greedy, at most 48 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from edge_et.errors import BundleError, InputError


@dataclass(frozen=True)
class JsonConstraint:
    """Generated text must be JSON: any JSON value (`schema` None, OpenAI's `json_object`) or
    one that matches a JSON schema (`schema`: its canonical JSON text, so the constraint is
    hashable and two equal schemas share one compiled grammar). A backend that can constrain
    decoding compiles it (llama.cpp: a GBNF grammar); runtime/constraints.py checks that it can."""

    schema: str | None = None


@dataclass(frozen=True)
class Sampling:
    """Sampling settings, applied in the order transformers uses: temperature, top-k, top-p, min-p.

    temperature 0 means greedy. The seed makes a generation repeatable. `constraint`: only
    tokens that keep the text valid under it may be sampled (backends/base.ConstrainedSampling).
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    seed: int = 0
    constraint: JsonConstraint | None = None


@dataclass(frozen=True)
class StageDecoding:
    """How one stage decodes. `budget` applies to thinking models only; `answer_budget` to
    thinking models and to the answer cue of instruct reasoners."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    max_tokens: int = 1024
    budget: int = 4096
    answer_budget: int = 1024

    def sampling(self, seed: int) -> Sampling:
        return Sampling(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            repeat_penalty=self.repeat_penalty,
            seed=seed,
        )

    def merged(self, overrides: dict, where: str) -> StageDecoding:
        """These settings with `overrides` applied; unknown keys ignored, bad values refused."""
        changes = {}
        for item in fields(self):
            if item.name not in overrides or overrides[item.name] is None:
                continue
            value = overrides[item.name]
            kind = float if item.type == "float" else int
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{where}.{item.name} must be a number, got {value!r}")
            if kind is int and value != int(value):
                raise InputError(f"{where}.{item.name} must be a whole number, got {value!r}")
            changes[item.name] = kind(value)
        result = replace(self, **changes)
        result._check(where)
        return result

    def _check(self, where: str) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0 or self.min_p < 0:
            raise InputError(
                f"{where}: temperature >= 0, 0 < top_p <= 1, top_k >= 0, min_p >= 0 required"
            )
        if self.max_tokens < 1 or self.budget < 0 or self.answer_budget < 1:
            raise InputError(f"{where}: max_tokens and answer_budget must be >= 1, budget >= 0")


DEFAULTS: dict[str, StageDecoding] = {
    "extract": StageDecoding(),
    "caption": StageDecoding(),
    "direct": StageDecoding(),
    "think": StageDecoding(temperature=0.6, top_p=0.95, top_k=20, budget=4096, answer_budget=1024),
    "reason": StageDecoding(
        temperature=0.7, top_p=0.8, top_k=20, max_tokens=1024, answer_budget=16
    ),
    "hint": StageDecoding(max_tokens=48),
}


def stage_decoding(stage: str, bundle_decoding: dict, flags: dict | None = None) -> StageDecoding:
    """Defaults for `stage`, then the bundle's `decoding.<stage>`, then non-None `flags`."""
    section = bundle_decoding.get(stage, {})
    if not isinstance(section, dict):
        raise BundleError(f"bundle.json: decoding.{stage} must be an object")
    settings = DEFAULTS[stage].merged(section, f"bundle.json decoding.{stage}")
    return settings.merged(flags or {}, "option")
