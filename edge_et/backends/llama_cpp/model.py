"""GGUF models through llama-cpp-python: `Llama` for text, libmtmd for images.

Generation is driven token by token through llama.cpp's own sampler chain, so the
runtime's budget forcing and stats sit directly on llama.cpp with no second loop
underneath. Images go through the low-level mtmd calls so that the vision encode is
timed on its own (`image_encode_s`) and our safely decoded pixels are what it sees.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Sequence
from contextlib import ExitStack

import llama_cpp
import llama_cpp.mtmd_cpp as mtmd
import numpy as np

from edge_et.backends.base import (
    CachesImages,
    ConstrainedSampling,
    ContextFull,
    HeadReuse,
    LogitEdit,
    PromptStats,
    Sampling,
    Speculates,
    check_prompt_fits,
)
from edge_et.backends.drafting import Drafter, SpecCounts
from edge_et.backends.image_cache import EmbeddingCache
from edge_et.backends.llama_cpp import log as llama_log
from edge_et.backends.llama_cpp.grammar import gbnf
from edge_et.backends.llama_cpp.loading import (  # noqa: F401  (KV_TYPES, default_threads: re-exported)
    KV_TYPES,
    PrefillSettings,
    default_threads,
    load_mmproj,
    load_text,
)
from edge_et.backends.llama_cpp.prefix import (
    KeptSegments,
    evaluate_in_segments,
    reset,
    segment_ends,
)
from edge_et.backends.llama_cpp.speculative import Speculation, vocab_signature
from edge_et.core.images import LoadedImage
from edge_et.errors import BundleError, ModelError

llama_log.install()

# Image embeddings kept for reuse (same picture, another question): at most this many bytes.
IMAGE_CACHE_BYTES = 256 * 2**20


def _is_text(chunk) -> bool:
    return mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT


class LlamaCppModel(CachesImages, ConstrainedSampling, HeadReuse, Speculates):
    """A GGUF language model (with an mmproj, a vision-language model). Implements TextModel,
    with the optional abilities CachesImages, ConstrainedSampling (a JSON constraint as a
    grammar sampler, grammar.py), HeadReuse and Speculates."""

    def __init__(
        self,
        *,
        model_path: str,
        n_ctx: int,
        mmproj_path: str | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        n_batch: int = 512,
        kv_type: str | None = None,
        image_max_tokens: int | None = None,
        image_cache_bytes: int = IMAGE_CACHE_BYTES,
        prefill: PrefillSettings | None = None,
        image_cache: EmbeddingCache | None = None,
    ):
        # `image_cache`: one shared by instances of the same files (tuning reloads a model
        # under other settings without encoding its picture again).
        self._stack = ExitStack()
        self._pending: list[int] = []
        self._image_cache = (
            image_cache if image_cache is not None else EmbeddingCache(image_cache_bytes)
        )
        self.image_encodes = 0  # pictures encoded (cache hits excluded)
        self._chunk_encodes = 0
        self._chain = None
        self._chain_key: Sampling | None = None
        self._speculation: Speculation | None = None
        self._vocab_signature: dict | None = None
        self._kept = KeptSegments()  # shared heads whose KV state starts the context (prefix.py)
        started = time.perf_counter()
        self.prefill = prefill or PrefillSettings(n_batch=n_batch)
        self._llm = self._load_text(
            model_path, n_ctx, n_threads, n_gpu_layers, n_batch, kv_type, self.prefill
        )
        self._stack.callback(self._llm.close)
        self._stack.callback(self._free_chain)
        self._stack.callback(self.set_drafter, None)
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        # llama.cpp pads the context up to a multiple of 256, but llama-cpp-python's token
        # buffer keeps the requested size: the smaller of the two is the real limit.
        self.n_ctx = min(n_ctx, self._llm.n_ctx())
        self._mtmd = (
            self._load_mmproj(mmproj_path, n_gpu_layers > 0, image_max_tokens)
            if mmproj_path
            else None
        )
        self._llava_ov = self._llava_ov_images(mmproj_path) if mmproj_path else None
        self.load_s = time.perf_counter() - started
        self.chat_template = self._llm.metadata.get("tokenizer.chat_template")
        self.bos_text = self._special_text(llama_cpp.llama_vocab_bos(self._vocab))
        self.eos_text = self._special_text(llama_cpp.llama_vocab_eos(self._vocab))
        self.media_marker = mtmd.mtmd_default_marker().decode("utf-8")

    # -- loading ------------------------------------------------------------------------

    @staticmethod
    def _load_text(
        path: str,
        n_ctx: int,
        n_threads: int | None,
        n_gpu_layers: int,
        n_batch: int,
        kv_type: str | None,
        prefill: PrefillSettings,
    ) -> llama_cpp.Llama:
        return load_text(path, n_ctx, n_threads, n_gpu_layers, kv_type, prefill)

    def _load_mmproj(self, path: str, use_gpu: bool, image_max_tokens: int | None):
        ctx = load_mmproj(
            path,
            self._llm,
            use_gpu=use_gpu,
            image_max_tokens=image_max_tokens,
            settings=self.prefill,
        )
        self._stack.callback(mtmd.mtmd_free, ctx)
        return ctx

    def _llava_ov_images(self, path: str):
        # LLaVA-OneVision hook: its anyres packing is done by edge-et, not mtmd (llava_ov.py).
        from edge_et.backends.llama_cpp import llava_ov as llava_ov_mtmd
        from edge_et.formats import llava_ov

        layout = llava_ov.read_layout(path)
        if layout is None:
            return None
        return llava_ov_mtmd.LlavaOvImages(layout=layout, mtmd_ctx=self._mtmd, llm=self._llm)

    @property
    def chunk_encodes(self) -> int:
        """Image chunks through the vision encoder: a tiled picture is several (one per tile
        and the global view), a LLaVA-OneVision picture one per view."""
        views = self._llava_ov.view_encodes if self._llava_ov is not None else 0
        return self._chunk_encodes + views

    # -- tokens -------------------------------------------------------------------------

    def tokenize(self, *, text: str) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def piece(self, *, token: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        return buf.raw[:n] if n >= 0 else b""

    def _special_text(self, token: int) -> str:
        return self.piece(token=token).decode("utf-8", errors="replace") if token >= 0 else ""

    def is_end(self, *, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    @property
    def tokens_in_context(self) -> int:
        drafted = len(self._speculation.draft) if self._speculation else 0
        return self._llm.n_tokens - drafted + len(self._pending)

    # -- prompt -------------------------------------------------------------------------

    def _add_special(self, prompt: str) -> bool:
        # Templates that write the BOS text themselves (Llama 3, Gemma) must not get a second one.
        return not (self.bos_text and prompt.startswith(self.bos_text))

    def _end_generation(self) -> None:
        if self._speculation is not None:
            self._speculation.rollback()
        self._pending = []
        self._free_chain()

    def _clear(self) -> None:
        self._end_generation()
        reset(self._llm)
        self._kept = KeptSegments()

    def _tokens(self, text: str, prompt: str) -> list[int]:
        return self._llm.tokenize(
            text.encode("utf-8"), add_bos=self._add_special(prompt), special=True
        )

    def start(self, *, prompt: str, image: LoadedImage | None = None) -> PromptStats:
        self._clear()
        if image is not None:
            return self._start_with_image(prompt, image)
        tokens = self._tokens(prompt, prompt)
        self._check_fits(len(tokens))
        started = time.perf_counter()
        self._llm.eval(tokens)
        return PromptStats(prompt_tokens=len(tokens), prefill_s=time.perf_counter() - started)

    def start_with_heads(self, *, prompt: str, heads: Sequence[str]) -> PromptStats:
        """`start` a text prompt that begins with each of `heads` (each a prefix of the next),
        keeping their KV state for the next prompt that shares them (implements HeadReuse;
        prefix.py says why the splits are fixed). The result is byte-identical to the same
        call on a fresh model, whatever was started before."""
        if not all(prompt.startswith(head) for head in heads):
            raise ValueError("the prompt does not start with its heads")  # a runtime bug
        self._end_generation()
        tokens = self._tokens(prompt, prompt)
        self._check_fits(len(tokens))
        ends = segment_ends([self._tokens(head, prompt) for head in heads], tokens)
        started = time.perf_counter()
        reused = evaluate_in_segments(self._llm, self._kept, tokens, ends)
        return PromptStats(
            prompt_tokens=len(tokens), prefill_s=time.perf_counter() - started, reused_tokens=reused
        )

    def _check_fits(self, n_tokens: int) -> None:
        check_prompt_fits(n_tokens, self.n_ctx)

    def _start_with_image(self, prompt: str, image: LoadedImage) -> PromptStats:
        if self._mtmd is None:
            raise BundleError("this model has no mmproj, so it cannot take an image")
        if self.media_marker not in prompt:
            raise ValueError("prompt lacks the media marker")  # a runtime bug, not a user error
        if self._llava_ov is not None:  # LLaVA-OneVision hook (see _llava_ov_images)
            stats = self._llava_ov.start(
                prompt,
                image,
                add_special=self._add_special(prompt),
                check_fits=self._check_fits,
                cache=self._image_cache,
            )
            self.image_encodes += not stats.image_cached
            return stats
        with ExitStack() as scope:
            chunks = self._tokenize_with_image(prompt, image, scope)
            return self._eval_chunks(chunks, image.sha256)

    def _tokenize_with_image(self, prompt: str, image: LoadedImage, scope: ExitStack):
        rgb = np.ascontiguousarray(image.rgb, dtype=np.uint8)
        pixels = rgb.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        bitmap = mtmd.mtmd_bitmap_init(image.width, image.height, pixels)
        if not bitmap:
            raise ModelError(f"libmtmd refused the image ({image.width}x{image.height})")
        scope.callback(mtmd.mtmd_bitmap_free, bitmap)
        chunks = mtmd.mtmd_input_chunks_init()
        scope.callback(mtmd.mtmd_input_chunks_free, chunks)
        text = mtmd.mtmd_input_text()
        encoded = prompt.encode("utf-8")
        text.text, text.text_len = encoded, len(encoded)
        text.add_special, text.parse_special = self._add_special(prompt), True
        bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
        status = mtmd.mtmd_tokenize(self._mtmd, chunks, ctypes.byref(text), bitmaps, 1)
        if status != 0:
            raise ModelError(
                f"libmtmd could not prepare the image (error {status}; "
                f"{llama_log.last_error() or 'image too small or too large?'})"
            )
        return chunks

    def _eval_chunks(self, chunks, image_key: str) -> PromptStats:
        total = mtmd.mtmd_helper_get_n_tokens(chunks)
        self._check_fits(total)
        parts = [
            mtmd.mtmd_input_chunks_get(chunks, i)
            for i in range(mtmd.mtmd_input_chunks_size(chunks))
        ]
        images = [chunk for chunk in parts if not _is_text(chunk)]
        embeddings, encode_s, cached = self._picture_embeddings(images, image_key)
        per_image = iter(embeddings)  # image chunks take their own embeddings, in order
        prefill_s = 0.0
        for chunk in parts:
            if _is_text(chunk):
                started = time.perf_counter()
                self._llm.eval(self._chunk_tokens(chunk))
                prefill_s += time.perf_counter() - started
            else:
                prefill_s += self._decode_embeddings(chunk, next(per_image))
        return PromptStats(
            prompt_tokens=total, prefill_s=prefill_s, image_encode_s=encode_s, image_cached=cached
        )

    @staticmethod
    def _chunk_tokens(chunk) -> list[int]:
        count = ctypes.c_size_t()
        pointer = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
        return [pointer[j] for j in range(count.value)]

    def _picture_embeddings(self, images: list, image_key: str) -> tuple[tuple, float, bool]:
        """(embeddings of every image chunk in order, encode seconds, whether cached).

        libmtmd cuts a tiling model's picture into several chunks (the tiles and the global
        view); the cache keeps all of them under the picture's hash, so a picture seen before
        skips every encode and a new one encodes every chunk. Reusing embeddings (rather than
        the KV state after the image) works for any prompt around the image, which is what a
        second question about one picture changes.
        """
        cached = self._image_cache.get(image_key)
        if cached is not None:
            if len(cached) != len(images):  # a runtime bug: one picture, one chunk layout
                raise RuntimeError(f"{len(cached)} cached image chunks for {len(images)}")
            return cached, 0.0, True
        started = time.perf_counter()
        embeddings = tuple(self._encode_chunk(chunk) for chunk in images)
        self.image_encodes += 1
        self._image_cache.put(image_key, embeddings)
        return embeddings, time.perf_counter() - started, False

    def _encode_chunk(self, chunk) -> np.ndarray:
        if mtmd.mtmd_encode_chunk(self._mtmd, chunk) != 0:
            raise ModelError(f"libmtmd failed to encode the image: {llama_log.last_error()}")
        pointer = mtmd.mtmd_get_output_embd(self._mtmd)
        # A copy: mtmd reuses its output buffer for the next chunk.
        embeddings = np.ctypeslib.as_array(pointer, shape=(self._chunk_values(chunk),)).copy()
        self._chunk_encodes += 1
        return embeddings

    def _chunk_values(self, chunk) -> int:
        # What mtmd hands the LLM: n_embd_inp (more than n_embd for deepstack models, Qwen3-VL).
        width = llama_cpp.llama_model_n_embd_inp(self._llm.model)
        return mtmd.mtmd_input_chunk_get_n_tokens(chunk) * width

    def _decode_embeddings(self, chunk, embeddings: np.ndarray) -> float:
        """Feed image embeddings to the LLM at the current position; returns seconds."""
        if embeddings.size != self._chunk_values(chunk):  # a runtime bug, never a user's
            raise RuntimeError(
                f"{embeddings.size} embedding values for an image chunk of "
                f"{self._chunk_values(chunk)}"
            )
        started = time.perf_counter()
        new_n_past = llama_cpp.llama_pos(0)
        pointer = embeddings.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        status = mtmd.mtmd_helper_decode_image_chunk(
            self._mtmd,
            self._llm.ctx,
            chunk,
            pointer,
            self._llm.n_tokens,
            0,
            self._llm.n_batch,
            ctypes.byref(new_n_past),
            mtmd.mtmd_helper_post_decode_callback(),
            None,
        )
        if status != 0:
            raise RuntimeError(f"llama.cpp failed to decode image embeddings (status {status})")
        self._llm.n_tokens = new_n_past.value
        return time.perf_counter() - started

    # -- generation ---------------------------------------------------------------------

    def append(self, *, tokens: Sequence[int]) -> None:
        for token in (int(t) for t in tokens):
            # A drafted token the runtime kept is already in the KV cache.
            if self._pending or self._speculation is None or not self._speculation.confirm(token):
                self._pending.append(token)

    def sample(self, *, sampling: Sampling, edit: LogitEdit | None = None) -> int:
        if self._pending:
            if self.tokens_in_context > self.n_ctx:
                raise ContextFull(self.n_ctx)
            if self._speculation is not None:
                self._speculation.evaluate(self._pending, self.n_ctx)
            else:
                self._llm.eval(self._pending)
            self._pending = []
        if self._chain is None or self._chain_key != sampling:
            self._build_chain(sampling)
        row = self._speculation.logit_index if self._speculation is not None else -1
        if edit is not None:
            edit(self._last_logits(row))
        return int(llama_cpp.llama_sampler_sample(self._chain, self._llm.ctx, row))

    # -- speculative decoding (speculative.py) ------------------------------------------

    def set_drafter(self, drafter: Drafter | None) -> None:
        """Draft ahead with `drafter` from the next evaluation on; None stops drafting."""
        if self._speculation is not None:
            self._speculation.rollback()
            self._speculation.close()
        self._speculation = Speculation(self._llm, drafter) if drafter is not None else None

    @property
    def speculation_counts(self) -> SpecCounts | None:
        return self._speculation.counts if self._speculation is not None else None

    @property
    def vocab_signature(self) -> dict:
        """Tokenizer type, special ids and token-list hash (computed once)."""
        if self._vocab_signature is None:
            self._vocab_signature = vocab_signature(self._llm)
        return self._vocab_signature

    @property
    def llama(self) -> llama_cpp.Llama:
        """The llama-cpp-python model, for a drafter that runs on this model's context and
        for the bare baseline (the same weights and KV cache)."""
        return self._llm

    @property
    def mtmd_context(self):
        """libmtmd's context of the mmproj (None without one), for the bare baseline."""
        return self._mtmd

    @property
    def packs_images(self) -> bool:
        """Whether edge-et packs this model's image views itself (LLaVA-OneVision's anyres),
        so that libmtmd alone would feed different image tokens."""
        return self._llava_ov is not None

    @property
    def llava_ov_images(self):
        """The LLaVA-OneVision image path (llava_ov.LlavaOvImages), or None for libmtmd's own."""
        return self._llava_ov

    def _last_logits(self, row: int = -1) -> np.ndarray:
        # A view on llama.cpp's own buffer: edits here are what the sampler reads.
        pointer = llama_cpp.llama_get_logits_ith(self._llm.ctx, row)
        return np.ctypeslib.as_array(pointer, shape=(llama_cpp.llama_vocab_n_tokens(self._vocab),))

    def _build_chain(self, sampling: Sampling) -> None:
        self._free_chain()
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = lambda sampler: llama_cpp.llama_sampler_chain_add(chain, sampler)  # noqa: E731
        if sampling.constraint is not None:
            # First, so the samplers after it only ever see tokens the grammar allows.
            grammar = gbnf(sampling.constraint).encode("utf-8")
            add(llama_cpp.llama_sampler_init_grammar(self._vocab, grammar, b"root"))
        if sampling.repeat_penalty != 1.0:
            # 0.3.36's vendored llama.cpp still takes the vocabulary size first.
            n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
            add(
                llama_cpp.llama_sampler_init_penalties(
                    n_vocab, 64, sampling.repeat_penalty, 0.0, 0.0
                )
            )
        if sampling.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            # transformers' order: temperature, then top-k, then top-p on the tempered probabilities.
            add(llama_cpp.llama_sampler_init_temp(sampling.temperature))
            if sampling.top_k > 0:
                add(llama_cpp.llama_sampler_init_top_k(sampling.top_k))
            if sampling.top_p < 1.0:
                add(llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
            if sampling.min_p > 0:
                add(llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
            add(llama_cpp.llama_sampler_init_dist(sampling.seed & 0xFFFFFFFF))
        self._chain, self._chain_key = chain, sampling

    def _free_chain(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain, self._chain_key = None, None

    def forget_images(self, sha256: str | None = None) -> None:
        """Drop cached image embeddings, all of them (benchmarks) or one picture's (a batch
        whose later lines do not show it again): the next time it is encoded again."""
        self._image_cache.clear() if sha256 is None else self._image_cache.discard(sha256)

    def close(self) -> None:
        self._stack.close()
