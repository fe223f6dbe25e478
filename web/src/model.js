// One stage of the package in ONNX Runtime Web: the decoder with its KV cache, for the
// perception stage also the token-embedding and vision graphs. The same contract as the
// Python runtime (edge_et/backends/onnx): `inputs_embeds` or `input_ids`, `attention_mask`,
// `position_ids`, `past_key_values.N.key/value` in; `logits`, `present.N.key/value` out.

import * as ort from "onnxruntime-web";

import { pack, prepare } from "./vision.js";

// Prompt positions per decoder call, as the Python runtime (footprint.PREFILL_CHUNK).
export const PREFILL_CHUNK = 256;

function layerOrder(a, b) {
  const [, la, ka] = a.split("."), [, lb, kb] = b.split(".");
  return Number(la) - Number(lb) || (ka < kb ? -1 : ka > kb ? 1 : 0);
}

function int64(values, dims) {
  return new ort.Tensor("int64", BigInt64Array.from(values, (v) => BigInt(v)), dims);
}

export class StageModel {
  /**
   * @param stage  the manifest's stage section (`config`: the model's settings)
   * @param sessions {decoder, embed?, vision?}: ort.InferenceSession
   * @param tokenizer StageTokenizer; @param newline Float32Array or null (llava_onevision)
   */
  constructor(stage, sessions, tokenizer, preprocessing) {
    this.config = stage.config;
    this.sessions = sessions;
    this.tokenizer = tokenizer;
    this.preprocessing = preprocessing;
    this.takesEmbeds = sessions.decoder.inputNames.includes("inputs_embeds");
    this.names = new Set(sessions.decoder.inputNames);
    this.past = sessions.decoder.inputNames.filter((n) => n.startsWith("past_key_values.")).sort(layerOrder);
    this.present = this.past.map((n) => n.replace("past_key_values.", "present."));
    this.ends = new Set(this.config.end_token_ids);
    this.nCtx = this.config.max_positions;
    this.reset();
  }

  reset() {
    this.nPast = 0;
    this.pending = [];
    this.logits = null;
    const { n_head_kv: heads, head_dim: dim } = this.config;
    this.cache = Object.fromEntries(this.past.map((n) => [n, new ort.Tensor("float32", new Float32Array(0), [1, heads, 0, dim])]));
  }

  tokenize(text) { return this.tokenizer.encode(text); }
  piece(id) { return this.tokenizer.piece(id); }
  isEnd(id) { return this.ends.has(id); }

  /** Ids of prompt text; `first`: the start of the context (BOS added if the model wants it). */
  promptIds(text, first) {
    const ids = this.tokenize(text);
    const bos = this.config.bos_text;
    if (first && this.config.add_bos && bos && !text.startsWith(bos)) {
      const id = this.tokenizer.tokenId(bos);
      if (id !== null) ids.unshift(id);
    }
    return ids;
  }

  /** Feed a text prompt; returns its token count. */
  async start(prompt) {
    this.reset();
    const ids = this.promptIds(prompt, true);
    this.checkFits(ids.length);
    await this.feedIds(ids);
    return { promptTokens: ids.length };
  }

  /**
   * Feed a prompt with a picture at the media marker: the text before and after tokenized
   * apart, the image span between, its image-token slots filled with the vision graph's output.
   */
  async startWithImage(prompt, marker, image, onEncoded) {
    this.reset();
    const at = prompt.indexOf(marker);
    if (at < 0) throw new Error("the prompt lacks the media marker");
    const [open, close] = this.preprocessing.wrap || ["", ""];
    const head = this.promptIds(prompt.slice(0, at) + open, true);
    const tail = this.promptIds(close + prompt.slice(at + marker.length), false);
    const prepared = prepare(image, this.preprocessing);
    this.checkFits(head.length + prepared.span.length + tail.length);
    const started = performance.now();
    const embeddings = await this.encode(prepared, image);
    const encodeMs = performance.now() - started;
    onEncoded?.(encodeMs);
    const ids = [...head, ...prepared.span, ...tail];
    const embeds = await this.embedIds(ids);
    const hidden = this.config.hidden_size;
    let slot = 0;
    prepared.span.forEach((id, i) => {
      if (id === this.preprocessing.image_token_id) {
        embeds.set(embeddings.subarray(slot * hidden, (slot + 1) * hidden), (head.length + i) * hidden);
        slot++;
      }
    });
    if (slot * hidden !== embeddings.length) throw new Error(`${embeddings.length / hidden} image embeddings for ${slot} slots`);
    await this.feedEmbeds(embeds, ids.length);
    return { promptTokens: ids.length, encodeMs };
  }

  async encode(prepared, image) {
    const p = this.preprocessing, session = this.sessions.vision;
    const input = session.inputNames[0];
    const plane = 3 * p.tile * p.tile;
    const fixed = p.views_per_call; // a fixed batch: the package's (NNAPI/CoreML want it)
    const batch = fixed || 4; // else a few views per call bound the encoder's memory
    const parts = [];
    let dim = 0, perViewLen = 0;
    for (let v = 0; v < prepared.count; v += batch) {
      const n = Math.min(batch, prepared.count - v);
      const rows = fixed ? batch : n; // the last call of a fixed batch padded with zeros
      const feed = new Float32Array(rows * plane);
      feed.set(prepared.pixels.subarray(v * plane, (v + n) * plane));
      const out = await session.run({ [input]: new ort.Tensor("float32", feed, [rows, 3, p.tile, p.tile]) });
      const tensor = out[session.outputNames[0]];
      [, perViewLen, dim] = tensor.dims;
      parts.push(tensor.data.subarray(0, n * perViewLen * dim));
    }
    const perView = new Float32Array(prepared.count * perViewLen * dim);
    let o = 0;
    for (const part of parts) { perView.set(part, o); o += part.length; }
    return pack(p.kind, perView, dim, image, p);
  }

  checkFits(n) {
    if (n >= this.nCtx) throw new Error(`the prompt is ${n} tokens but the context holds ${this.nCtx}`);
  }

  async embedIds(ids) {
    const out = await this.sessions.embed.run({ input_ids: int64(ids, [1, ids.length]) });
    return new Float32Array(out[this.sessions.embed.outputNames[0]].data);
  }

  async feedIds(ids) {
    if (this.takesEmbeds) return this.feedEmbeds(await this.embedIds(ids), ids.length);
    for (let at = 0; at < ids.length; at += PREFILL_CHUNK) {
      const chunk = ids.slice(at, at + PREFILL_CHUNK);
      await this.forward({ input_ids: int64(chunk, [1, chunk.length]) }, chunk.length);
    }
  }

  async feedEmbeds(embeds, n) {
    const hidden = embeds.length / n;
    for (let at = 0; at < n; at += PREFILL_CHUNK) {
      const m = Math.min(PREFILL_CHUNK, n - at);
      const feeds = { inputs_embeds: new ort.Tensor("float32", embeds.slice(at * hidden, (at + m) * hidden), [1, m, hidden]) };
      if (this.names.has("input_ids")) feeds.input_ids = int64(new Array(m).fill(0), [1, m]);
      await this.forward(feeds, m);
    }
  }

  async forward(feeds, n) {
    Object.assign(feeds, this.cache);
    if (this.names.has("attention_mask")) feeds.attention_mask = int64(new Array(this.nPast + n).fill(1), [1, this.nPast + n]);
    if (this.names.has("position_ids")) feeds.position_ids = int64(Array.from({ length: n }, (_, i) => this.nPast + i), [1, n]);
    const out = await this.sessions.decoder.run(feeds, ["logits", ...this.present]);
    for (const [i, name] of this.past.entries()) {
      this.cache[name]?.dispose?.();
      this.cache[name] = out[this.present[i]];
    }
    this.nPast += n;
    const logits = out.logits;
    const vocab = logits.dims[2];
    this.logits = new Float32Array(logits.data.subarray((n - 1) * vocab, n * vocab));
    logits.dispose?.();
  }

  get tokensInContext() { return this.nPast + this.pending.length; }

  append(tokens) { this.pending.push(...tokens); }

  /** The next-token logits after everything appended (a copy the caller may edit). */
  async nextLogits() {
    if (this.pending.length) {
      if (this.nPast + this.pending.length > this.nCtx) throw new ContextFull(this.nCtx);
      const pending = this.pending;
      this.pending = [];
      await this.feedIds(pending);
    }
    if (!this.logits) throw new Error("nextLogits() before start()");
    return this.logits.slice();
  }

  async release() {
    for (const s of Object.values(this.sessions)) await s?.release?.();
  }
}

export class ContextFull extends Error {
  constructor(n) { super(`the context of ${n} tokens is full`); this.name = "ContextFull"; }
}
