"""ONNX models through ONNX Runtime, with numpy, Pillow and `tokenizers` only (no torch).

One stage of an ONNX bundle is a folder: the decoder (`decoder.onnx`), for a VLM also the
token-embedding graph (`embed.onnx`) and the vision tower with its projector (`vision.onnx`),
the tokenizer (`tokenizer.json`) and `onnx_config.json`, which `export/onnx/pipeline.py` writes and this
module reads (STAGE_CONFIG). The generation loop is token by token with a KV cache, behind the
same TextModel Protocol as llama.cpp, so edge_et.runtime.generation (budget forcing, streaming) runs
unchanged on it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_et.backends.base import (
    CachesImages,
    ContextFull,
    LogitEdit,
    PromptStats,
    Sampling,
    check_prompt_fits,
)

# Prompt positions per decoder call: bounds the all-position logits buffer (and the estimate).
from edge_et.backends.onnx.footprint import PREFILL_CHUNK
from edge_et.backends.onnx.mrope import prompt_positions
from edge_et.backends.onnx.sampling import Sampler
from edge_et.backends.onnx.session import DecoderSession, open_session
from edge_et.backends.onnx.tokenizer import DeviceTokenizer
from edge_et.core.images import LoadedImage
from edge_et.errors import BundleError
from edge_et.formats.mobile import package_stage_settings
from edge_et.formats.onnx_stage import STAGE_CONFIG, read_config

MEDIA_MARKER = "<__media__>"  # the text that marks the image in a prompt (llama.cpp's too)
DEVICE_ENV = "EDGE_ET_ONNX_DEVICE"


def read_stage_config(model_path: Path) -> dict:
    """The stage's settings: from the package's mobile.json where the decoder is in a mobile
    package (format 2 on: what an app reads), else the `onnx_config.json` beside the decoder,
    checked for its format."""
    settings = package_stage_settings(Path(model_path))
    if settings is not None:
        return settings
    path = Path(model_path).parent / STAGE_CONFIG
    if not path.is_file():
        raise BundleError(f"ONNX stage '{path.parent.name}' has no {STAGE_CONFIG}")
    return read_config(path)


class OnnxModel(CachesImages):
    """An ONNX language model (with `vision.onnx`, a vision-language model). Implements TextModel
    and the optional ability CachesImages.

    `device` picks the execution provider (cpu, cuda, coreml, qnn, nnapi, dml, xnnpack; CPU fallback
    with a warning); unset, it is $EDGE_ET_ONNX_DEVICE, else cuda when the memory plan put
    layers on a GPU (n_gpu_layers > 0), else cpu. Settings that are llama.cpp's own (kv_type,
    image_max_tokens) are accepted and ignored, so a memory plan applies to either backend.
    """

    def __init__(
        self,
        *,
        model_path: str,
        n_ctx: int,
        mmproj_path: str | None = None,
        n_threads: int | None = None,
        device: str | None = None,
        n_gpu_layers: int = 0,
        **_llama_only,
    ):
        started = time.perf_counter()
        folder = Path(model_path).parent
        self.config = read_stage_config(Path(model_path))
        self.device = device or os.environ.get(DEVICE_ENV) or ("cuda" if n_gpu_layers else "cpu")
        self._tokenizer = DeviceTokenizer(folder / self.config.get("tokenizer", "tokenizer.json"))
        self._decoder = DecoderSession(
            open_session(Path(model_path), device=self.device, n_threads=n_threads)
        )
        self._embed = None
        if self._decoder.takes_embeds:
            self._embed = open_session(
                folder / self.config.get("embed", "embed.onnx"),
                device=self.device,
                n_threads=n_threads,
            )
        self._vision = None
        if mmproj_path:
            from edge_et.backends.onnx.encoders import open_encoder

            self._vision = open_encoder(
                self.config.get("vision") or {},
                folder,
                open_session(Path(mmproj_path), device=self.device, n_threads=n_threads),
            )
        self.n_ctx = min(n_ctx, int(self.config.get("max_positions") or n_ctx))
        self.chat_template = self.config.get("chat_template")
        self.bos_text = self.config.get("bos_text") or ""
        self.eos_text = self.config.get("eos_text") or ""
        self.media_marker = MEDIA_MARKER
        self._add_bos = bool(self.config.get("add_bos")) and self.bos_text
        self._ends = frozenset(int(t) for t in self.config.get("end_token_ids", []))
        self._pending: list[int] = []
        self._logits: np.ndarray | None = None
        self._sampler: Sampler | None = None
        self.load_s = time.perf_counter() - started

    @property
    def image_encodes(self) -> int:
        return self._vision.encodes if self._vision else 0

    @property
    def vision(self):
        """The image encoder (onnx/encoders.py; None for a text-only stage): parity checks
        compare its pixel values and embeddings with the reference."""
        return self._vision

    @property
    def decoder_session(self):
        """The decoder's ONNX Runtime session, for the bare baseline (the same loaded graph)."""
        return self._decoder.session

    @property
    def embed_session(self):
        """The token-embedding session (None where the decoder takes ids), for the bare baseline."""
        return self._embed

    # -- tokens -------------------------------------------------------------------------

    def tokenize(self, *, text: str) -> list[int]:
        return self._tokenizer.encode(text)

    def piece(self, *, token: int) -> bytes:
        return self._tokenizer.piece(token)

    def is_end(self, *, token: int) -> bool:
        return token in self._ends

    @property
    def tokens_in_context(self) -> int:
        return self._decoder.n_past + len(self._pending)

    # -- prompt -------------------------------------------------------------------------

    def prompt_ids(self, text: str, *, first: bool) -> list[int]:
        """Ids of prompt text; `first`: the start of the context (BOS added if the model wants)."""
        ids = self.tokenize(text=text)
        # Templates that write the BOS text themselves (Llama 3, Gemma) must not get a second.
        if first and self._add_bos and not text.startswith(self.bos_text):
            bos = self._tokenizer.token_id(self.bos_text)
            ids = ([bos] if bos is not None else []) + ids
        return ids

    def _reset(self) -> None:
        self._decoder.reset()
        self._pending, self._sampler, self._logits = [], None, None

    def start(self, *, prompt: str, image: LoadedImage | None = None) -> PromptStats:
        self._reset()
        if image is None:
            ids = self.prompt_ids(prompt, first=True)
            self._check_fits(len(ids))
            started = time.perf_counter()
            self._feed_ids(ids)
            return PromptStats(prompt_tokens=len(ids), prefill_s=time.perf_counter() - started)
        return self._start_with_image(prompt, image)

    def image_prompt_ids(self, prompt: str) -> tuple[list[int], list[int]]:
        """Ids before and after the image's embeddings in `prompt` (which has the media marker),
        the vision's boundary texts (Qwen's `<|vision_start|>`/`<|vision_end|>`) included."""
        if self.media_marker not in prompt:
            raise ValueError("prompt lacks the media marker")  # a runtime bug, not a user error
        opening, closing = self._vision.wrap
        before, _, after = prompt.partition(self.media_marker)
        return self.prompt_ids(before + opening, first=True), self.prompt_ids(
            closing + after, first=False
        )

    def _start_with_image(self, prompt: str, image: LoadedImage) -> PromptStats:
        if self._vision is None:
            raise BundleError("this model has no vision.onnx, so it cannot take an image")
        head, tail = self.image_prompt_ids(prompt)
        span = self._vision.span_ids(image)
        self._check_fits(len(head) + len(span) + len(tail))  # before spending time on the encode
        started = time.perf_counter()
        embeddings, cached = self._vision.embed(image)
        encoded = time.perf_counter()
        positions = None
        if self._decoder.mrope:
            positions = prompt_positions([len(head), self._vision.token_grid(image), len(tail)])
        self._feed_embeds(self._with_image(head, span, tail, embeddings), positions)
        return PromptStats(
            prompt_tokens=len(head) + len(span) + len(tail),
            prefill_s=time.perf_counter() - encoded,
            image_encode_s=0.0 if cached else encoded - started,
            image_cached=cached,
        )

    def _with_image(
        self, head: list[int], span: list[int], tail: list[int], embeddings: np.ndarray
    ) -> np.ndarray:
        """The prompt's embeddings, the image's in the span's image-token slots, in order (only
        the span's: the text around it may spell that token too)."""
        embeds = self._embed_ids(head + span + tail)
        slots = len(head) + np.flatnonzero(np.asarray(span) == self._vision.image_token_id)
        if len(slots) != len(embeddings):  # a runtime bug, not a user error
            raise ValueError(f"{len(embeddings)} image embeddings for {len(slots)} slots")
        embeds[slots] = embeddings
        return embeds

    def _check_fits(self, n_tokens: int) -> None:
        check_prompt_fits(n_tokens, self.n_ctx)

    def _embed_ids(self, ids: Sequence[int]) -> np.ndarray:
        if self._embed is None:
            raise BundleError("this ONNX decoder takes token ids only (no embed.onnx)")
        array = np.asarray(ids, dtype=np.int64)[None]
        return np.asarray(self._embed.run(None, {"input_ids": array})[0][0], dtype=np.float32)

    def _feed_ids(self, ids: Sequence[int]) -> None:
        if self._decoder.takes_embeds:
            self._feed_embeds(self._embed_ids(ids))
        else:
            for at in range(0, len(ids), PREFILL_CHUNK):
                chunk = np.asarray(ids[at : at + PREFILL_CHUNK])
                self._logits = self._decoder.forward(ids=chunk)[-1]

    def _feed_embeds(self, embeds: np.ndarray, positions: np.ndarray | None = None) -> None:
        """`positions`: M-RoPE's (3, len(embeds)), for a prompt with an image."""
        for at in range(0, len(embeds), PREFILL_CHUNK):
            chunk = None if positions is None else positions[:, at : at + PREFILL_CHUNK]
            self._logits = self._decoder.forward(
                embeds=embeds[at : at + PREFILL_CHUNK], positions=chunk
            )[-1]

    def score(self, *, ids: Sequence[int]) -> np.ndarray:
        """Logits (len(ids), vocab) of every position of `ids` from an empty context
        (validation against the reference; generation state is reset)."""
        self._reset()
        if self._decoder.takes_embeds:
            return self._decoder.forward(embeds=self._embed_ids(ids))
        return self._decoder.forward(ids=np.asarray(ids))

    # -- generation ---------------------------------------------------------------------

    def append(self, *, tokens: Sequence[int]) -> None:
        self._pending.extend(int(t) for t in tokens)

    def sample(self, *, sampling: Sampling, edit: LogitEdit | None = None) -> int:
        if self._pending:
            if self._decoder.n_past + len(self._pending) > self.n_ctx:
                raise ContextFull(self.n_ctx)
            pending, self._pending = self._pending, []
            self._feed_ids(pending)
        if self._logits is None:
            raise RuntimeError("sample() before start()")
        if self._sampler is None or self._sampler.sampling != sampling:
            self._sampler = Sampler(sampling)
        logits = self._logits.copy()  # edits apply to this draw only, as in llama.cpp
        if edit is not None:
            edit(logits)
        return self._sampler(logits)

    def forget_images(self, sha256: str | None = None) -> None:
        """Drop cached image embeddings, all of them (benchmarks) or one picture's (a batch
        whose later lines do not show it again): the next time it is encoded again."""
        if self._vision is not None:
            self._vision.forget(sha256)

    def close(self) -> None:
        """Drop the sessions now; ONNX Runtime frees their memory with them."""
        self._decoder = self._embed = self._vision = None  # type: ignore[assignment]
