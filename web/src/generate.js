// Sampling and generation over a StageModel, as the manifest's `pipeline` section describes
// them (the Python runtime's edge_et/backends/onnx/sampling.py, edge_et/runtime/generation.py
// and answer_cue.py): the sampler chain, budget forcing for thinking models, the answer cue for
// instruct reasoners. Greedy decoding is the same token for token; a sampled run draws from
// this page's own seeded generator, not numpy's, so its tokens differ from Python's.

import { ContextFull } from "./model.js";

// A small seeded generator (mulberry32): repeatable in the page, documented as not numpy's.
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Sampler {
  /** settings: temperature, top_p, top_k, min_p, repeat_penalty; sampler: the manifest's section */
  constructor(settings, seed, sampler) {
    this.s = settings;
    this.random = mulberry32(seed);
    this.window = sampler.repeat_window;
    this.recent = [];
  }

  draw(logits) {
    const token = this.pick(logits);
    this.recent.push(token);
    if (this.recent.length > this.window) this.recent.shift();
    return token;
  }

  pick(logits) {
    const s = this.s;
    if (s.repeat_penalty !== 1 && this.recent.length) {
      for (const id of new Set(this.recent)) {
        const v = logits[id];
        logits[id] = v > 0 ? v / s.repeat_penalty : v * s.repeat_penalty;
      }
    }
    if (s.temperature <= 0) { // greedy: the first maximal logit
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
      return best;
    }
    const scaled = Array.from(logits, (v) => v / s.temperature);
    let order = scaled.map((_, i) => i).filter((i) => Number.isFinite(scaled[i]));
    order.sort((a, b) => scaled[b] - scaled[a] || a - b);
    if (!order.length) order = [0];
    if (s.top_k > 0) order = order.slice(0, s.top_k);
    let probs = softmax(order.map((i) => scaled[i]));
    if (s.top_p < 1) {
      let sum = 0, cut = order.length;
      for (let i = 0; i < probs.length; i++) { sum += probs[i]; if (sum >= s.top_p) { cut = i + 1; break; } }
      order = order.slice(0, cut); probs = probs.slice(0, cut);
    }
    if (s.min_p > 0) {
      const keep = probs.map((p) => p >= s.min_p * probs[0]);
      order = order.filter((_, i) => keep[i]); probs = probs.filter((_, i) => keep[i]);
    }
    probs = softmax(order.map((i) => scaled[i]));
    let r = this.random(), i = 0;
    for (; i < probs.length - 1; i++) { r -= probs[i]; if (r < 0) break; }
    return order[i];
  }
}

function softmax(values) {
  const max = Math.max(...values);
  const e = values.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

export class StopRun extends Error {
  constructor() { super("stopped"); this.name = "StopRun"; }
}

/** Samples or forces tokens one at a time, decoding their bytes into streamed text. */
export class Stepper {
  constructor(model, sampler, onText, { ignoreEos = false, signal = null, onToken = null } = {}) {
    Object.assign(this, { model, sampler, onText, ignoreEos, signal, onToken });
    this.decoder = new TextDecoder("utf-8", { fatal: false });
    this.parts = [];
    this.count = 0;
    this.tokens = [];
    this.decodeMs = 0;
    this.banned = new Set();
  }

  /** One sampled token, or null at an end token (not kept). With `ignoreEos` an end token is
   * masked from then on and the draw repeated, as the Python runtime's Stepper does. */
  async sample(edit = null) {
    if (this.signal?.aborted) throw new StopRun();
    const started = performance.now();
    const draw = async () => {
      const logits = await this.model.nextLogits();
      edit?.(logits);
      for (const id of this.banned) logits[id] = -Infinity;
      return this.sampler.draw(logits);
    };
    let token = await draw();
    while (this.ignoreEos && this.model.isEnd(token)) {
      this.banned.add(token);
      token = await draw();
    }
    this.decodeMs += performance.now() - started;
    if (this.model.isEnd(token)) return null;
    this.keep(token, false);
    return token;
  }

  force(token) { this.keep(token, true); }

  keep(token, forced) {
    this.count++;
    this.tokens.push(token);
    this.model.append([token]);
    this.onToken?.(token, forced);
    const text = this.decoder.decode(this.model.piece(token), { stream: true });
    if (text) this.emit(text);
  }

  emit(text) { this.parts.push(text); this.onText?.(text); }

  finish() {
    const tail = this.decoder.decode();
    if (tail) this.emit(tail);
    return this.text;
  }

  get text() { return this.parts.join(""); }
}

/** Up to `maxTokens` tokens after the prompt; returns {text, stop}. */
export async function generate(stepper, maxTokens) {
  const stop = await run(stepper, maxTokens);
  return { text: stepper.finish(), stop };
}

async function run(stepper, maxTokens) {
  try {
    while (stepper.count < maxTokens) if ((await stepper.sample()) === null) return "eos";
    return "max_tokens";
  } catch (error) {
    if (error instanceof ContextFull) return "context_full";
    throw error;
  }
}

/**
 * A thought of at most `budget` tokens, then the answer (the manifest's `budget_forcing`):
 * past `boost_from` of the budget the logit of the close token is multiplied by (1 + t/B) and
 * the newline's set to the same; token B-1 is forced to the newline, token B to the close.
 */
export async function thinkThenAnswer(stepper, budget, answerBudget, forcing) {
  const close = single(stepper.model, forcing.close), newline = single(stepper.model, forcing.newline);
  budget = Math.max(2, budget);
  let closed = false, forced = false;
  try {
    for (;;) {
      const t = stepper.count + 1;
      if (t === budget - 1) { stepper.force(newline); continue; }
      if (t >= budget) { stepper.force(close); closed = forced = true; break; }
      const edit = t / budget > forcing.boost_from ? (logits) => {
        const boosted = logits[close] * (1 + t / budget);
        logits[newline] = boosted;
        logits[close] = boosted;
      } : null;
      const token = await stepper.sample(edit);
      if (token === null) break;
      if (token === close) { closed = true; break; }
    }
  } catch (error) {
    if (error instanceof ContextFull) return { text: stepper.finish(), stop: "context_full", thinkTokens: stepper.count, forced };
    throw error;
  }
  const thinkTokens = stepper.count;
  if (!closed) return { text: stepper.finish(), stop: "eos", thinkTokens, forced };
  const stop = await run(stepper, budget + answerBudget);
  return { text: stepper.finish(), stop, thinkTokens, forced };
}

function single(model, text) {
  const ids = model.tokenize(text);
  if (ids.length !== 1) throw new Error(`${JSON.stringify(text)} is not one token in the reasoner's vocabulary`);
  return ids[0];
}

/**
 * Reason for at most `maxTokens`; when the last line names no answer, the cue (the manifest's
 * `answer_cue`) is forced on a line of its own and the answer line decoded, its first text
 * sampled with end tokens masked.
 */
export async function reasonWithAnswerCue(stepper, makeStepper, maxTokens, answerBudget, cue, parse,
                                          letters = "") {
  const first = await generate(stepper, maxTokens);
  if (first.stop === "context_full" || parse(first.text).matched) return { ...first, cued: false };
  const cueStep = makeStepper({}), opening = makeStepper({ ignoreEos: true }), rest = makeStepper({});
  const allowed = letters ? letterTokens(stepper.model, letters) : null;
  let stop;
  try {
    const text = first.text === "" || first.text.endsWith("\n") ? cue.text : "\n" + cue.text;
    for (const token of stepper.model.tokenize(text)) cueStep.force(token);
    if (allowed) {  // options in the question: one of their letters, nothing else
      await cueStep.sample((logits) => {
        const kept = allowed.map((id) => logits[id]);
        logits.fill(-Infinity);
        allowed.forEach((id, i) => { logits[id] = kept[i]; });
      });
      const worst = ["context_full", "max_tokens"].find((l) => l === first.stop) || "answer_line";
      return { text: first.text + cueStep.finish(), stop: worst, cued: true, constrained: true,
               tokens: [...stepper.tokens, ...cueStep.tokens] };
    }
    while (!opening.text.trim() && opening.count < answerBudget) await opening.sample();
    stop = await answerLine(rest, opening.text, answerBudget - opening.count);
  } catch (error) {
    if (!(error instanceof ContextFull)) throw error;
    stop = "context_full";
  }
  const worst = ["context_full", "max_tokens"].find((l) => l === first.stop || l === stop) || stop;
  return { text: first.text + cueStep.finish() + opening.finish() + rest.finish(), stop: worst, cued: true,
           constrained: letters ? false : undefined,
           tokens: [...stepper.tokens, ...cueStep.tokens, ...opening.tokens, ...rest.tokens] };
}

/** The tokens that write each letter alone (" B" or "B"); null when a letter has none. */
export function letterTokens(model, letters) {
  const found = [], decoder = new TextDecoder();
  for (const letter of letters) {
    const ids = [" " + letter, letter].map((text) => model.tokenize(text))
      .filter((t) => t.length === 1 && decoder.decode(model.piece(t[0])).trim() === letter)
      .map((t) => t[0]);
    if (!ids.length) return null;
    for (const id of ids) if (!found.includes(id)) found.push(id);
  }
  return found;
}

async function answerLine(stepper, opening, budget) {
  for (;;) {
    if ((opening + stepper.text).trimStart().includes("\n")) return "answer_line";
    if (stepper.count >= budget) return "max_tokens";
    if ((await stepper.sample()) === null) return "eos";
  }
}
