"""What the GGUF and ONNX parity judges share: the logit bounds, the per-prompt checks and the
report of a worker that crashed. Both judge from the measurements, never from a stored `ok`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextThresholds:
    """max_abs: max |Δlogit| <= max_abs × max(1, max |reference logit|), per prompt.
    rel_rms: rms(Δlogit) / std(reference logits) per prompt.
    argmax: share of positions whose greedy token agrees, near-ties forgiven (a flip counts
    only when the pick sits more than the allowed max|Δlogit| below the reference maximum)."""

    max_abs: float
    rel_rms: float
    argmax: float


def as_float(value) -> float:
    """A measurement as a float; None (a NaN in parity.json) becomes NaN, which fails every
    `not value <= bound` test (written that way so that NaN never passes)."""
    return float("nan") if value is None else float(value)


def logit_bound(thresholds: TextThresholds, ref_abs_max) -> float:
    """The allowed max |Δlogit|: relative to the largest reference logit, never below absolute."""
    return thresholds.max_abs * max(1.0, as_float(ref_abs_max))


def prompt_failures(p: dict, th: TextThresholds, where: str, *, side: str, name: str) -> list[str]:
    """One line per bound that prompt measurement `p` breaks. `side`: the key of the measured
    runtime in `p["nonfinite"]` ("llama_cpp", "onnx"); `name`: how a message names it."""
    out = []
    bad = p["nonfinite"]
    if bad["hf"] or bad[side]:
        who = name if bad[side] else "transformers"
        out.append(
            f"{where}: {who} gave NaN/inf logits at {max(bad['hf'], bad[side])} of "
            f"{p['positions']} positions"
        )
    if not p.get("compared"):
        return out
    bound = logit_bound(th, p["ref_abs_max"])
    if not as_float(p["max_abs"]) <= bound:
        out.append(
            f"{where}: max |logit diff| {as_float(p['max_abs']):.3g} > {bound:.3g} "
            f"({th.max_abs:g} x max(1, max|logit| {as_float(p['ref_abs_max']):.3g}))"
        )
    if not as_float(p["rel_rms"]) <= th.rel_rms:
        out.append(
            f"{where}: rms logit diff / logit std {as_float(p['rel_rms']):.3g} > {th.rel_rms:g}"
        )
    real = [f for f in p["flips"] if not as_float(f["ref_gap"]) <= bound]
    agreement = 1 - len(real) / p["compared"]
    if agreement < th.argmax:
        worst = max(real, key=lambda f: as_float(f["ref_gap"]))
        out.append(
            f"{where}: greedy tokens agree at {agreement:.1%} of positions < "
            f"{th.argmax:.0%} (position {worst['pos']}: {name}'s pick is "
            f"{as_float(worst['ref_gap']):.3g} below the reference maximum)"
        )
    return out


def verdict(failures: list[str]) -> tuple[bool, str]:
    """(True, "") without failures, else (False, the first)."""
    return (False, failures[0]) if failures else (True, "")


def crashed(report_format: str, request: dict, keys: tuple[str, ...], error: str) -> dict:
    """The report of a worker that crashed or timed out: `passes` rejects it with `error`."""
    return {
        "format": report_format,
        **{k: request[k] for k in keys},
        "error": error,
        "ok": False,
        "first_failure": error,
    }
