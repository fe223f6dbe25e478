"""The narrow contract between the pipeline and a model backend.

A backend loads one model and exposes token-level steps; everything above tokens
(chat templates, budgets, budget forcing, streaming, stats) lives in the runtime and
is written once for every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

import numpy as np

from edge_et.core.decoding import Sampling  # noqa: F401  (part of the backend contract)

if TYPE_CHECKING:
    from edge_et.core.images import LoadedImage

# Edits the logits of the next token in place (budget forcing's boost uses it).
LogitEdit = Callable[[np.ndarray], None]


class ContextFull(Exception):
    """Generation reached the end of the context window; the caller stops there."""

    def __init__(self, n_ctx: int):
        super().__init__(f"the context window of {n_ctx} tokens is full")


@dataclass
class PromptStats:
    """What feeding a prompt cost: tokens (image tokens included), prefill and image-encode seconds."""

    prompt_tokens: int
    prefill_s: float
    image_encode_s: float | None = None
    image_cached: bool = False  # the image's embeddings came from the cache (no encode)
    reused_tokens: int = 0      # leading prompt tokens whose KV state was kept (prefix reuse)


class TextModel(Protocol):
    """A loaded language model that the runtime drives one token at a time."""

    load_s: float        # seconds the load took
    n_ctx: int           # context window in tokens
    chat_template: str | None  # Jinja chat template from the model's metadata
    bos_text: str        # BOS / EOS token text, for templates that reference them
    eos_text: str

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


class ConstrainedSampling(Protocol):
    """A backend ability: its `sample` honours `Sampling.constraint` (only tokens that keep the
    text valid JSON, or valid under a JSON schema, are sampled). Declared by the backend's
    `BackendSpec.constrain`, which checks a constraint before any model loads; a backend
    without it refuses a constrained request in one line instead of ignoring the constraint."""

    def sample(self, *, sampling: Sampling, edit: LogitEdit | None = None) -> int:
        """As TextModel.sample, the constraint applied before the other samplers."""


class VisionTextModel(TextModel, Protocol):
    """A TextModel whose `start` accepts an image."""

    media_marker: str    # the text that marks the image position in a prompt
