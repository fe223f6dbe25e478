// Extract+Think from the package's manifest alone: the hint (the manifest's question rule),
// the extraction prompt with the picture, the reasoning prompt, the model's chat template,
// budget forcing or the answer cue, and the paper's answer parsing. Every string and number
// comes from mobile.json (`prompts`, `decoding`, `pipeline`); none is written here.

import { Template } from "@huggingface/jinja";

import { Sampler, Stepper, generate, reasonWithAnswerCue, thinkThenAnswer } from "./generate.js";

// ---------------------------------------------------------------------------------------
// the paper's prompts and parsing (edge_et/core/prompts.py, from the manifest's strings)

function pyRegex(source, flags = "") {
  // The manifest writes Python regexes; the ones it uses need only the (?i) prefix moved.
  if (source.startsWith("(?i)")) return new RegExp(source.slice(4), flags + "i");
  return new RegExp(source, flags);
}

/**
 * The question's option letters ("ABCD"; "" when it lists none), by the manifest's rules: a run
 * of options lettered A, B, C, ... in order, at least two; a new run from A replaces the last.
 */
export function optionLetters(question, rules) {
  if (!rules) return "";
  const line = pyRegex(rules.option_line), inline = pyRegex(rules.inline, "g");
  const label = pyRegex(rules.options_label);
  let found = [];
  for (const text of question.split(/\r\n|\r|\n/)) {
    const labelled = label.exec(text);
    let pairs = labelled ? [...text.slice(labelled[0].length).matchAll(inline)].map((m) => [m[1], m[2]]) : [];
    const single = line.exec(text);
    for (const [letter] of pairs.length ? pairs : single ? [[single[1], single[2]]] : []) {
      if (letter === String.fromCharCode(65 + found.length)) found.push(letter);
      else if (letter === "A") found = [letter];
    }
  }
  return found.length >= 2 ? found.join("") : "";
}

export function parseAnswer(output, pipeline) {
  const lines = output.trimEnd().split("\n");
  const last = lines[lines.length - 1];
  const match = pyRegex(pipeline.answer_pattern).exec(last);
  return match ? { answer: match[1].trim(), matched: true } : { answer: last.trim(), matched: false };
}

export function extractionPrompt(hint, prompts) {
  let text = prompts.extraction_prefix + hint.trim();
  if (!text.endsWith(".")) text += ".";
  return text;
}

export function reasoningPrompt(description, question, stepByStep, prompts) {
  if (!/^(question:|hint:)/.test(question.toLowerCase())) question = "Question: " + question;
  if (!description.endsWith("\n")) description += "\n";
  return prompts.reasoning_role + "Description: " + description + question +
    (stepByStep ? prompts.thinking_post : prompts.non_thinking_post);
}

/** The hint when the user gives none: the manifest's `pipeline.hint_rule` (edge_et/core/hints.py). */
export function hintFromQuestion(question, rule) {
  const option = pyRegex(rule.option_line), label = pyRegex(rule.label);
  const kept = question.split(/\r\n|\r|\n/).filter((line) => !option.test(line));
  const stem = kept.join(" ").split(/\s+/).filter(Boolean).join(" ").replace(label, "");
  const words = " " + stem.toLowerCase().replace(/[^a-z0-9 ]/g, " ") + " ";
  const phrases = rule.topics.filter(([, cues]) => cues.some((c) => words.includes(` ${c} `) || words.includes(` ${c}s `)))
    .map(([phrase]) => phrase);
  if (!phrases.length) return stem ? rule.fallback.replace("{stem}", stem) : rule.empty;
  if (phrases.length === 1) return phrases[0];
  return phrases.slice(0, -1).join(", ") + " and " + phrases[phrases.length - 1];
}

// ---------------------------------------------------------------------------------------
// chat templates

const templates = new Map();

export function renderUserTurn(config, content, enableThinking) {
  const source = config.chat_template;
  if (!source) throw new Error("the stage has no chat template");
  if (!templates.has(source)) templates.set(source, new Template(source));
  const context = { messages: [{ role: "user", content }], add_generation_prompt: true,
                    bos_token: config.bos_text || "", eos_token: config.eos_text || "" };
  if (enableThinking !== null && enableThinking !== undefined) context.enable_thinking = enableThinking;
  return templates.get(source).render(context);
}

// ---------------------------------------------------------------------------------------
// one request

/**
 * Extract+Think (or `extract` alone) on one picture.
 * @param pkg the loaded package ({manifest, perception, reasoning})
 * @param request {image, question, hint?, mode, seed, think_budget?, answer_budget?, max_tokens?, temperature?}
 * @param on {stage(name), text(stage, text), token(stage, id, forced), done(stage, stats)}
 */
export async function run(pkg, request, on = {}, signal = null) {
  const m = pkg.manifest, pipe = m.pipeline;
  const seed = request.seed ?? Math.floor(Math.random() * 2 ** 31);
  const result = { mode: request.mode, seed, stages: {}, tokens: {} };
  result.hint = request.hint?.trim() || hintFromQuestion(request.question, pipe.hint_rule);
  result.hint_source = request.hint?.trim() ? "flag" : "question-rule";

  // Stage 1: the VLM describes what the question needs.
  const perception = pkg.perception;
  const settings = m.decoding.extract;
  on.stage?.("extract");
  const content = pipe.image_prompt.replace("{media}", pipe.media_marker).replace("{request}", extractionPrompt(result.hint, m.prompts));
  const prompt = renderUserTurn(perception.config, content, null);
  const stats = { started: performance.now() };
  const begun = await perception.startWithImage(prompt, pipe.media_marker, request.image, (ms) => { stats.image_encode_ms = ms; });
  stats.prompt_tokens = begun.promptTokens;
  stats.prefill_ms = performance.now() - stats.started - stats.image_encode_ms;
  const sampler = new Sampler(settings, seed + pipe.seed_offsets.extract, pipe.sampler);
  const stepper = new Stepper(perception, sampler, (t) => on.text?.("extract", t),
                              { signal, onToken: (id, f) => on.token?.("extract", id, f) });
  const extraction = await generate(stepper, settings.max_tokens);
  Object.assign(stats, finished(stepper, extraction.stop), { total_ms: performance.now() - stats.started });
  delete stats.started;
  result.extraction = extraction.text.trim();
  result.tokens.extract = stepper.tokens;
  result.stages.extract = stats;
  on.done?.("extract", stats);
  if (request.mode === "extract") return result;

  // Stage 2: the LLM reasons over the description.
  on.stage?.("think");
  const reasoning = pkg.reasoning, thinking = m.stages.reasoning.thinking;
  const think = { started: performance.now() };
  const text = reasoningPrompt(result.extraction, request.question, true, m.prompts);
  const stage = thinking ? "think" : "reason";
  const decoding = { ...m.decoding[stage] };
  for (const key of ["temperature", "max_tokens"]) if (request[key] !== undefined && request[key] !== null) decoding[key] = request[key];
  if (request.think_budget != null) decoding.budget = request.think_budget;
  if (request.answer_budget != null) decoding.answer_budget = request.answer_budget;
  const rSampler = new Sampler(decoding, seed + pipe.seed_offsets.think, pipe.sampler);
  const make = (opts) => new Stepper(reasoning, rSampler, (t) => on.text?.("think", t),
                                     { signal, onToken: (id, f) => on.token?.("think", id, f), ...opts });
  const start = async (enable) => {
    const begun = await reasoning.start(renderUserTurn(reasoning.config, text, enable));
    think.prompt_tokens = begun.promptTokens;
    think.prefill_ms = performance.now() - think.started;
  };
  let out, main;
  if (thinking && decoding.budget === 0) {
    await start(false);
    main = make({});
    out = await generate(main, decoding.answer_budget);
  } else if (thinking) {
    await start(true);
    main = make({});
    out = await thinkThenAnswer(main, decoding.budget, decoding.answer_budget, pipe.budget_forcing);
  } else {
    await start(null);
    main = make({});
    out = await reasonWithAnswerCue(main, make, decoding.max_tokens, decoding.answer_budget, pipe.answer_cue,
                                    (t) => parseAnswer(t, pipe), optionLetters(request.question, pipe.answer_cue.letters));
  }
  result.reasoning = out.text;
  result.tokens.think = out.tokens || main.tokens;
  Object.assign(think, finished(main, out.stop), { generated_tokens: result.tokens.think.length });
  if (out.thinkTokens !== undefined) Object.assign(think, { think_tokens: out.thinkTokens, think_forced: out.forced });
  if (out.cued !== undefined) think.answer_cued = out.cued;
  if (out.constrained !== undefined) think.answer_constrained = out.constrained;
  think.total_ms = performance.now() - think.started;
  delete think.started;
  result.stages.think = think;
  const parsed = parseAnswer(out.text, pipe);
  result.answer = parsed.answer;
  result.answer_matched = parsed.matched;
  on.done?.("think", think);
  return result;
}

function finished(stepper, stop) {
  return { stop_reason: stop, generated_tokens: stepper.count, decode_ms: stepper.decodeMs };
}
