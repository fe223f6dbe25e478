"""The narrow contract between the pipeline and a model backend.

A backend loads one model and exposes token-level steps; everything above tokens
(chat templates, budgets, budget forcing, streaming, stats) lives in the runtime and
is written once for every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from edge_et.core.decoding import Sampling  # noqa: F401  (part of the backend contract)
from edge_et.errors import InputError

if TYPE_CHECKING:
    from edge_et.backends.drafting import Drafter, SpecCounts
    from edge_et.core.images import LoadedImage

# Edits the logits of the next token in place (budget forcing's boost uses it).
LogitEdit = Callable[[np.ndarray], None]


class ContextFull(Exception):
    """Generation reached the end of the context window; the caller stops there."""

    def __init__(self, n_ctx: int):
        super().__init__(f"the context window of {n_ctx} tokens is full")


def check_prompt_fits(n_tokens: int, n_ctx: int) -> None:
    """InputError (one line) when a prompt of `n_tokens` leaves no room to generate in `n_ctx`."""
    if n_tokens >= n_ctx:
        raise InputError(
            f"the prompt is {n_tokens} tokens but the context holds {n_ctx}; "
            "shorten the input or raise n_ctx in bundle.json"
        )


@dataclass
class PromptStats:
    """What feeding a prompt cost: tokens (image tokens included), prefill and image-encode seconds."""

    prompt_tokens: int
    prefill_s: float
    image_encode_s: float | None = None
    image_cached: bool = False  # the image's embeddings came from the cache (no encode)
    reused_tokens: int = 0  # leading prompt tokens whose KV state was kept (prefix reuse)


class TextModel(Protocol):
    """A loaded language model that the runtime drives one token at a time."""

    load_s: float  # seconds the load took
    n_ctx: int  # context window in tokens
    chat_template: str | None  # Jinja chat template from the model's metadata
    bos_text: str  # BOS / EOS token text, for templates that reference them
    eos_text: str
    media_marker: str  # marks the image's place in a prompt (a model without vision refuses images)

    def tokenize(self, *, text: str) -> list[int]:
        """Token ids of `text`, special tokens (`</think>`) parsed, no BOS added."""

    def piece(self, *, token: int) -> bytes:
        """The bytes a token stands for (special tokens rendered as their text)."""

    def is_end(self, *, token: int) -> bool:
        """Whether `token` ends generation (EOS/EOT and the model's other end-of-generation ids)."""

    def start(self, *, prompt: str, image: LoadedImage | None = None) -> PromptStats:
        """Clear the context and feed `prompt` (BOS added as the model wants).

        With `image`, `prompt` holds `media_marker` where the image goes (vision models only).
        """

    def append(self, *, tokens: Sequence[int]) -> None:
        """Add tokens after the current context (sampled or forced); evaluated lazily."""

    def sample(self, *, sampling: Sampling, edit: LogitEdit | None = None) -> int:
        """Evaluate what was appended, then sample the next token without appending it.

        The sampler (and its seeded RNG) is created on the first call after `start`
        and kept while `sampling` stays the same.
        """

    @property
    def tokens_in_context(self) -> int:
        """Tokens in the context, appended-but-not-yet-evaluated ones included."""

    def close(self) -> None:
        """Free the model and its context now (not at garbage collection)."""


# -- optional abilities: a model class declares each by subclassing it; the runtime checks
# with isinstance once, where it chooses what to do, never with hasattr at each call.


class ConstrainedSampling(Protocol):
    """A backend ability: its `sample` honours `Sampling.constraint` (only tokens that keep the
    text valid JSON, or valid under a JSON schema, are sampled). Declared by the backend's
    `BackendSpec.constrain`, which checks a constraint before any model loads; a backend
    without it refuses a constrained request in one line instead of ignoring the constraint."""

    def sample(self, *, sampling: Sampling, edit: LogitEdit | None = None) -> int:
        """As TextModel.sample, the constraint applied before the other samplers."""


@runtime_checkable
class HeadReuse(Protocol):
    """A TextModel that keeps the state of a prompt's shared heads between requests.

    Where reuse may end is a function of the prompt and its heads alone, so kept heads and a
    fresh model evaluate the same batches: the result is byte-identical to the same call on a
    fresh model, whatever was started before. (Not to `start(prompt=prompt)`, which evaluates
    the prompt in one run of batches: a quantized model may round that split differently.)
    """

    def start_with_heads(self, *, prompt: str, heads: Sequence[str]) -> PromptStats:
        """`start` for a text prompt that begins with each of `heads`, texts other prompts
        share, each a prefix of the next; evaluated one run of batches per head."""


@runtime_checkable
class CachesImages(Protocol):
    """A vision model that keeps image embeddings for later requests on the same picture."""

    image_encodes: int  # pictures actually encoded (cache hits excluded)

    def forget_images(self, sha256: str | None = None) -> None:
        """Drop the cached embeddings of one picture (by its sha256), or of all (None)."""


@runtime_checkable
class Speculates(Protocol):
    """A model that verifies a drafter's tokens in batches (edge_et/runtime/speculation.py)."""

    def set_drafter(self, drafter: Drafter | None) -> None:
        """Draft with `drafter` from the next evaluation on; None stops drafting."""

    @property
    def speculation_counts(self) -> SpecCounts | None:
        """Tokens drafted and accepted since the drafter was set (None without one)."""
