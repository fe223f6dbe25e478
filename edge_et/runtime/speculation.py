"""Which drafter the reasoning stage speculates with (`--speculative auto|off|lookup|draft`).

- lookup: n-gram prompt lookup over the context (the reasoner quotes the extraction and the
  question); no second model, no memory.
- draft: the perception model's language model drafts, when it is loaded beside the reasoner
  (co-resident), on the same backend, and its vocabulary is the reasoner's (tokenizer type,
  BOS/EOS ids and a hash of the token list); refused with the reason otherwise.
- auto: off, chosen by measurement (docs/latency.md): on the shared 2-core CPU both drafters
  decoded slower than plain decoding (a verify batch costs more than the tokens it saves at
  this acceptance), and on quantized pretrained models the batched verify kernels move
  near-tie greedy tokens, so speculation is opt-in.
- off: token by token.

Only models that declare the ability (`backends.base.Speculates`: llama.cpp) speculate;
`auto` is off elsewhere, an explicit mode is a one-line error.
"""

from __future__ import annotations

from edge_et.backends.base import Speculates, TextModel
from edge_et.backends.drafting import SPECULATIVE_MODES, Drafter, PromptLookup
from edge_et.core.stats import StageStats
from edge_et.errors import InputError

AUTO_MODE = "off"


def check_speculative(mode: str | None) -> str:
    mode = mode or "auto"
    if mode not in SPECULATIVE_MODES:
        raise InputError(
            f"unknown --speculative {mode!r}; choose one of: {', '.join(SPECULATIVE_MODES)}"
        )
    return mode


def choose_drafter(
    mode: str | None, reasoner: TextModel, perception: TextModel | None = None
) -> tuple[Drafter | None, str]:
    """(the drafter for `reasoner`, the mode it stands for); `perception`: the loaded
    perception model, or None when it is not resident. InputError (one line) for an unknown
    mode or one the models cannot do."""
    mode = check_speculative(mode)
    if mode == "off" or (mode == "auto" and AUTO_MODE == "off"):
        return None, "off"
    if not isinstance(reasoner, Speculates):
        if mode == "auto":
            return None, "off"
        raise InputError(
            f"--speculative {mode}: the reasoner's backend has no speculative decoding "
            "(llama.cpp only)"
        )
    if mode == "draft":
        return _draft_model(reasoner, perception), "draft"
    return PromptLookup(), "lookup"


def _draft_model(reasoner: TextModel, perception: TextModel | None) -> Drafter:
    # Only reached with a llama.cpp reasoner (the one backend that speculates): importing its
    # model module loads nothing new.
    from edge_et.backends.llama_cpp.model import LlamaCppModel
    from edge_et.backends.llama_cpp.speculative import DraftModel, vocab_mismatch

    if perception is None:
        raise InputError(
            "--speculative draft: the perception model is not loaded beside the "
            "reasoner (swap residency frees it); use lookup or --residency co-resident"
        )
    if not isinstance(perception, LlamaCppModel):
        raise InputError("--speculative draft: the perception model is not a llama.cpp model")
    reason = vocab_mismatch(reasoner.vocab_signature, perception.vocab_signature)
    if reason:
        raise InputError(
            f"--speculative draft: the perception LM cannot draft for the reasoner: {reason}"
        )
    drafter = DraftModel(perception.llama)
    drafter.reset()
    return drafter


def speculate(reasoner: TextModel, drafter: Drafter | None, label: str, stats: StageStats) -> None:
    """Attach `drafter` to `reasoner` for one stage (None: none) and say so in `stats`."""
    if isinstance(reasoner, Speculates):
        reasoner.set_drafter(drafter)
    stats.speculative = label


def record_counts(reasoner: TextModel, stats: StageStats) -> None:
    """Drafted and kept tokens of the stage into `stats`; the drafter is detached."""
    if not isinstance(reasoner, Speculates):
        return
    counts = reasoner.speculation_counts
    if counts is not None:
        stats.drafted_tokens, stats.accepted_tokens = counts.drafted, counts.accepted
    reasoner.set_drafter(None)
