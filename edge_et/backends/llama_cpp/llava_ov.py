"""LLaVA-OneVision images on llama.cpp: libmtmd encodes the views, numpy packs, llama_batch feeds.

The one place where `edge_et.formats.llava_ov` (pure packing) meets llama.cpp. A
`LlavaOvImages` is owned by a `LlamaCppModel` whose mmproj carries our packing key; the model
routes `start(prompt=..., image=...)` here.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from contextlib import ExitStack

import llama_cpp
import llama_cpp.mtmd_cpp as mtmd
import numpy as np

from edge_et.backends.base import PromptStats
from edge_et.backends.llama_cpp import log as llama_log
from edge_et.core.images import LoadedImage
from edge_et.errors import BundleError, ModelError
from edge_et.formats import llava_ov


class LlavaOvImages:
    """Encodes and feeds images the LLaVA-OneVision way for one llama.cpp model + mmproj."""

    def __init__(self, *, layout: llava_ov.Layout, mtmd_ctx, llm: llama_cpp.Llama):
        self.layout = layout
        self._mtmd, self._llm = mtmd_ctx, llm
        self._n_embd = llama_cpp.llama_model_n_embd_inp(llm.model)  # what batch.embd holds
        self._marker = mtmd.mtmd_default_marker()
        self.view_encodes = 0  # views through mtmd: a picture is several
        if layout.newline.shape != (self._n_embd,):
            raise BundleError(
                f"the mmproj's image newline has {layout.newline.shape[0]} values but "
                f"the language model is {self._n_embd} wide: mismatched files"
            )

    # -- image -> embeddings --------------------------------------------------------------

    def embed(self, image: LoadedImage) -> np.ndarray:
        """The packed image embeddings (n_tokens, n_embd) float32: what the LLM gets; at
        `detail` low, the global view's alone (side * side, no grid, no newlines)."""
        if image.detail == "low":
            return self._encode_view(llava_ov.base_view(image.rgb, self.layout)).astype(np.float32)
        views = [self._encode_view(view) for view in llava_ov.make_views(image.rgb, self.layout)]
        return llava_ov.pack(np.stack(views), image.height, image.width, self.layout)

    def _encode_view(self, view: np.ndarray) -> np.ndarray:
        """One tile-sized view through the vision tower and projector: (side*side, n_embd)."""
        with ExitStack() as scope:
            chunk = self._image_chunk(view, scope)
            if mtmd.mtmd_encode_chunk(self._mtmd, chunk) != 0:
                raise ModelError(f"libmtmd failed to encode the image: {llama_log.last_error()}")
            self.view_encodes += 1
            n_tokens = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
            pointer = mtmd.mtmd_get_output_embd(self._mtmd)
            flat = np.ctypeslib.as_array(pointer, shape=(n_tokens * self._n_embd,))
            return flat.reshape(n_tokens, self._n_embd).copy()  # mtmd reuses its buffer

    def _image_chunk(self, view: np.ndarray, scope: ExitStack):
        # The view already has the tile size, so mtmd's fixed-size preprocessing only normalises.
        pixels = np.ascontiguousarray(view, dtype=np.uint8)
        bitmap = mtmd.mtmd_bitmap_init(
            pixels.shape[1], pixels.shape[0], pixels.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        )
        if not bitmap:
            raise ModelError("libmtmd refused an image view")
        scope.callback(mtmd.mtmd_bitmap_free, bitmap)
        chunks = mtmd.mtmd_input_chunks_init()
        scope.callback(mtmd.mtmd_input_chunks_free, chunks)
        text = mtmd.mtmd_input_text()
        text.text, text.text_len = self._marker, len(self._marker)
        text.add_special, text.parse_special = False, True
        bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
        if mtmd.mtmd_tokenize(self._mtmd, chunks, ctypes.byref(text), bitmaps, 1) != 0:
            raise ModelError(f"libmtmd could not prepare an image view: {llama_log.last_error()}")
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                return chunk
        raise RuntimeError("libmtmd returned no image chunk for a view")

    # -- prompt with image ----------------------------------------------------------------

    def start(
        self,
        prompt: str,
        image: LoadedImage,
        *,
        add_special: bool,
        check_fits: Callable[[int], None],
        cache=None,
    ) -> PromptStats:
        """Feed `prompt` with `image` at its media marker into the (cleared) context.

        `cache` (an EmbeddingCache, LlamaCppModel's) skips the encode for a picture seen
        before; PromptStats.image_cached says so.
        """
        before, _, after = prompt.partition(self._marker.decode("utf-8"))
        head = self._llm.tokenize(before.encode("utf-8"), add_bos=add_special, special=True)
        tail = self._llm.tokenize(after.encode("utf-8"), add_bos=False, special=True)
        n_image = (
            self.layout.side**2
            if image.detail == "low"
            else llava_ov.count_tokens(image.height, image.width, self.layout)
        )
        check_fits(len(head) + n_image + len(tail))  # before spending time on the encode
        started = time.perf_counter()
        # The packed views are one part: the whole picture, so one cache entry holds it all.
        parts = cache.get(image.sha256) if cache is not None else None
        cached = parts is not None
        embeddings = parts[0] if cached else self.embed(image)
        if cache is not None and not cached:
            cache.put(image.sha256, (embeddings,))
        encoded = time.perf_counter()
        self._llm.eval(head)
        self.decode_embeddings(embeddings, last_logits=not tail)
        self._llm.eval(tail)
        return PromptStats(
            prompt_tokens=len(head) + len(embeddings) + len(tail),
            prefill_s=time.perf_counter() - encoded,
            image_encode_s=0.0 if cached else encoded - started,
            image_cached=cached,
        )

    def decode_embeddings(self, embeddings: np.ndarray, *, last_logits: bool = True) -> None:
        """Append embeddings (n, n_embd) to sequence 0 after the current tokens, in batches."""
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        n_batch = self._llm.n_batch
        batch = llama_cpp.llama_batch_init(n_batch, self._n_embd, 1)
        try:
            for start in range(0, len(embeddings), n_batch):
                part = embeddings[start : start + n_batch]
                final = last_logits and start + len(part) == len(embeddings)
                self._fill(batch, part, self._llm.n_tokens, final)
                if llama_cpp.llama_decode(self._llm.ctx, batch) != 0:
                    raise RuntimeError("llama.cpp failed to decode the image embeddings")
                self._llm.n_tokens += len(part)
        finally:
            llama_cpp.llama_batch_free(batch)

    def _fill(self, batch, part: np.ndarray, first_pos: int, final: bool) -> None:
        n = len(part)
        batch.n_tokens = n
        ctypes.memmove(batch.embd, part.ctypes.data, part.nbytes)
        for i in range(n):
            batch.pos[i] = first_pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = final and i == n - 1
