// The stage's tokenizer.json through @huggingface/tokenizers, plus what generation needs
// beyond encoding: the exact bytes of every token (a character may be split across tokens, so
// text is decoded incrementally from bytes, as the Python runtime does).

import { Tokenizer } from "@huggingface/tokenizers";

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

// GPT-2's printable stand-in character → byte (the inverse of bytes_to_unicode).
function byteDecoder() {
  const printable = [];
  for (let b = "!".charCodeAt(0); b <= "~".charCodeAt(0); b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Map();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (printable.includes(b)) table.set(String.fromCharCode(b), b);
    else table.set(String.fromCharCode(256 + extra++), b);
  }
  return table;
}

export class StageTokenizer {
  /** @param json the parsed tokenizer.json */
  constructor(json) {
    this.tok = new Tokenizer(json, {});
    this.byteLevel = JSON.stringify(json.decoder || {}).includes("ByteLevel");
    this.added = new Map((json.added_tokens || []).map((t) => [t.id, t.content]));
    this.bytes = byteDecoder();
    this.pieces = new Map();
    this.encoder = new TextEncoder();
  }

  /** Ids of `text`, special tokens in it parsed as tokens, no BOS/EOS post-processing. */
  encode(text) {
    return text === "" ? [] : this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  tokenId(text) {
    const id = this.tok.token_to_id(text);
    return id === undefined ? null : id;
  }

  /** The bytes token `id` stands for (empty outside the vocabulary). */
  piece(id) {
    let bytes = this.pieces.get(id);
    if (bytes === undefined) {
      bytes = this.pieceBytes(id);
      this.pieces.set(id, bytes);
    }
    return bytes;
  }

  pieceBytes(id) {
    if (this.added.has(id)) return this.encoder.encode(this.added.get(id));
    const text = this.tok.id_to_token(id);
    if (text === undefined || text === null) return new Uint8Array(0);
    if (this.byteLevel) {
      const chars = [...text];
      if (chars.every((ch) => this.bytes.has(ch))) return Uint8Array.from(chars, (ch) => this.bytes.get(ch));
      return this.encoder.encode(text);
    }
    const match = BYTE_PIECE.exec(text);
    if (match) return Uint8Array.of(parseInt(match[1], 16));
    return this.encoder.encode(text.replaceAll("\u2581", " "));
  }
}
