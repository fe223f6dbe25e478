"""The Hugging Face `tokenizer.json` on the device, through `tokenizers` (Rust, no torch).

Two jobs beyond encoding: the exact *bytes* of every token (generation streams UTF-8 that may
split inside a character, so text is decoded incrementally from bytes), and the ids that end
generation. Byte-level BPE vocabularies (Qwen, Llama 3, SmolLM2) spell bytes with GPT-2's
printable alphabet; SentencePiece-style ones (Gemma) write spaces as U+2581 and unknown bytes as
`<0xNN>` pieces. Added tokens (`<|im_end|>`, `</think>`) are their own text.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from edge_et.errors import MissingExtra, ModelError

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in character → byte (the inverse of `bytes_to_unicode`)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = [], 0
    for byte in range(256):
        if byte in printable:
            chars.append((chr(byte), byte))
        else:
            chars.append((chr(256 + extra), byte))
            extra += 1
    return dict(chars)


class DeviceTokenizer:
    """`tokenizer.json` loaded with `tokenizers`; special tokens in text are parsed as tokens."""

    def __init__(self, path: Path):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise MissingExtra(
                "the onnx backend needs the 'tokenizers' package: pip install 'edge-et[onnx]'",
                extra="onnx",
            ) from None
        try:
            self._tok = Tokenizer.from_file(str(path))
            spec = json.loads(Path(path).read_text(encoding="utf-8"))
        except Exception as exc:  # noqa: BLE001 - the Rust side raises its own exception type
            raise ModelError(f"cannot load tokenizer '{Path(path).name}': {exc}") from None
        self._byte_level = "ByteLevel" in json.dumps(spec.get("decoder") or {})
        self._added = {t["id"]: t["content"] for t in spec.get("added_tokens", [])}
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self._pieces: dict[int, bytes] = {}

    def encode(self, text: str) -> list[int]:
        """Ids of `text`; the tokenizer's own BOS/EOS post-processing is not applied."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def token_id(self, text: str) -> int | None:
        return self._tok.token_to_id(text)

    def piece(self, token: int) -> bytes:
        """The bytes token `token` stands for (b"" for ids outside the vocabulary)."""
        if token not in self._pieces:
            self._pieces[token] = self._piece_bytes(token)
        return self._pieces[token]

    def _piece_bytes(self, token: int) -> bytes:
        if token in self._added:
            return self._added[token].encode("utf-8")
        text = self._tok.id_to_token(token)
        if text is None:
            return b""
        if self._byte_level:
            table = _byte_decoder()
            if all(ch in table for ch in text):
                return bytes(table[ch] for ch in text)
            return text.encode("utf-8")
        match = _BYTE_PIECE.match(text)
        if match:
            return bytes([int(match.group(1), 16)])
        return text.replace("\u2581", " ").encode("utf-8")
