// The try-it page: a conversation with the server. Each question streams /v1/chat/completions
// (server-sent events) with the earlier turns, filling extraction, reasoning and answer as
// deltas arrive. A picture comes from the file picker, a paste or a drop; none makes a
// text-only question to the reasoning model. An instruct reasoner's steps go under
// "Reasoning" and only its last line (the answer) under "Answer", as a thinking model's do.
"use strict";
const $ = (id) => document.getElementById(id);
let controller = null;
let thinking = true;        // the reasoning model thinks (from /v1/models)
let picture = null;         // the current picture as a data: URI
let pictureSent = false;    // it is already in `history`
let history = [];           // the conversation so far, as sent: user and assistant messages
let lastModels = null;      // the cards of /v1/models, for the picked bundle's reasoner

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("key").value.trim() || localStorage.getItem("edge-et-key") || "";
  if (key) { h["Authorization"] = "Bearer " + key; localStorage.setItem("edge-et-key", key); }
  return h;
}

function readImage(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error("cannot read the image file"));
    reader.readAsDataURL(file);
  });
}

async function usePicture(file) {
  if (!file || !file.type.startsWith("image/")) { setStatus("that is not a picture", true); return; }
  picture = await readImage(file);
  pictureSent = false;
  $("preview").src = picture;
  $("preview").hidden = false;
  setStatus(history.length ? "new picture: the next question is about it" : "", false);
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function fmt(value) {
  return value === null || value === undefined ? "" : (typeof value === "number" ? String(Math.round(value * 1000) / 1000) : String(value));
}

function addTiming(stage, stats) {
  const row = document.createElement("tr");
  row.dataset.stage = stage;
  for (const value of [stage, stats.load_s, stats.image_cached ? "cached" : stats.image_encode_s,
                       stats.prompt_tokens, stats.prefill_tok_s, stats.generated_tokens, stats.decode_tok_s]) {
    const cell = document.createElement("td");
    cell.textContent = fmt(value);
    row.appendChild(cell);
  }
  $("timings").tBodies[0].appendChild(row);
}

// One run's text as it streams in, and where each part is shown.
class Turn {
  constructor(mode, json) {
    this.content = ""; this.extraction = "";
    // An instruct reasoner's whole text arrives as content: its steps are shown as reasoning
    // until the end, when the last line (the paper's answer line) moves under "Answer".
    this.split = !thinking && !json && mode.endsWith("-think");
    this.finished = null;
  }
  handle(chunk) {
    if (chunk.error) { throw new Error(chunk.error.message); }
    if (chunk.edge_et && chunk.edge_et.stage) { addTiming(chunk.edge_et.stage, chunk.edge_et.stats); }
    for (const choice of chunk.choices || []) {
      const d = choice.delta || {};
      if (d.extraction) { this.extraction += d.extraction; $("extraction").textContent += d.extraction; }
      if (d.reasoning_content) { $("reasoning").textContent += d.reasoning_content; }
      if (d.content && !d.extraction) {
        this.content += d.content;
        $(this.split ? "reasoning" : "content").textContent += d.content;
      }
      if (choice.finish_reason) { this.finish(chunk); }
    }
  }
  finish(chunk) {
    if (this.split) {
      const lines = this.content.trimEnd().split("\n");
      $("content").textContent = lines.pop();
      $("reasoning").textContent = lines.join("\n").trim();
    }
    const ext = chunk.edge_et || {};
    $("answer").textContent = ext.answer && ext.mode !== "chat" ? "Answer: " + ext.answer : "";
    const t = chunk.timings || {};
    if (t.extraction_cached) { addTiming("extract", { image_cached: true }); }
    // The seed is shown so a run worth keeping can be asked again word for word.
    const seed = ext.seed === undefined ? "" : ` · seed ${ext.seed}`;
    const mode = ext.mode === "chat" ? " · text only" : "";
    setStatus("done" + (t.queue_s ? ` (queued ${fmt(t.queue_s)} s)` : "") + mode + seed, false);
    this.finished = ext;
  }
}

function schemaFormat() {
  const text = $("schema").value.trim();
  if (!text) { return null; }
  let schema;
  try { schema = JSON.parse(text); } catch (error) { throw new Error("the JSON schema is not JSON: " + error.message); }
  return { type: "json_schema", json_schema: { name: "page", schema: schema } };
}

function remember(question, user, turn) {
  history.push(user, { role: "assistant", content: turn.content.trim(),
                       extraction: turn.extraction.trim() || undefined });
  pictureSent = pictureSent || picture !== null;
  const item = document.createElement("li");
  const q = document.createElement("div"); q.className = "q"; q.textContent = question;
  const a = document.createElement("div"); a.className = "a";
  a.textContent = $("content").textContent.trim() || (turn.finished && turn.finished.answer) || "";
  item.append(q, a);
  $("conversation").appendChild(item);
  $("conversation-box").hidden = false;
}

async function ask(event) {
  event.preventDefault();
  for (const id of ["extraction", "reasoning", "content", "answer"]) { $(id).textContent = ""; }
  $("timings").tBodies[0].replaceChildren();
  const question = $("question").value;
  const user = { role: "user", content: question };
  if (picture && !pictureSent) {
    user.content = [{ type: "image_url", image_url: { url: picture, detail: $("detail").value } },
                    { type: "text", text: question }];
  }
  let format;
  try { format = schemaFormat(); } catch (error) { setStatus(error.message, true); return; }
  const body = { model: $("bundle").value || $("model").textContent, stream: true,
                 messages: history.concat([user]), edge_et: { mode: $("mode").value } };
  if (format) { body.response_format = format; }
  if ($("budget").value !== "") { body.edge_et.think_budget = Number($("budget").value); }
  if ($("seed").value !== "") { body.seed = Number($("seed").value); }
  if ($("max_tokens").value !== "") { body.max_tokens = Number($("max_tokens").value); }
  const turn = new Turn($("mode").value, format !== null);
  controller = new AbortController();
  $("go").disabled = true; $("stop").disabled = false;
  setStatus("running…", false);
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!response.ok) {
      const error = await response.json().catch(() => ({}));
      throw new Error((error.error && error.error.message) || response.statusText);
    }
    await readEvents(response.body.getReader(), turn);
    if (turn.finished) { remember(question, user, turn); }
  } catch (error) {
    setStatus(error.name === "AbortError" ? "stopped" : "error: " + error.message, error.name !== "AbortError");
  } finally {
    $("go").disabled = false; $("stop").disabled = true; controller = null;
  }
}

async function readEvents(reader, turn) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) { return; }
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 2);
      if (!line.startsWith("data:")) { continue; }
      const data = line.slice(5).trim();
      if (data === "[DONE]") { return; }
      turn.handle(JSON.parse(data));
    }
  }
}

// Whether the picked bundle's reasoner thinks (its steps then come as reasoning deltas).
function pickedCard(cards) {
  lastModels = cards;
  const card = cards.find((c) => c.id === $("bundle").value) || cards[0];
  const stages = ((card || {}).edge_et || {}).stages || {};
  thinking = !stages.reasoning || Boolean(stages.reasoning.thinking);
}

// The bundle picker: every bundle the server serves, those loaded now marked; the choice is
// the request's `model` and stays picked across reloads of the list.
async function loadModel() {
  try {
    const response = await fetch("/v1/models", { headers: headers() });
    const models = await response.json();
    if (!response.ok) { $("model").textContent = "(API key needed)"; return; }
    const picked = $("bundle").value || localStorage.getItem("edge-et-model") || "";
    $("bundle").replaceChildren(...models.data.map((card) => {
      const option = document.createElement("option");
      const info = card.edge_et || {};
      option.value = card.id;
      option.textContent = card.id + (info.refused ? " (does not fit)" : info.loaded ? " · loaded" : "");
      option.disabled = Boolean(info.refused);
      return option;
    }));
    if (models.data.some((card) => card.id === picked)) { $("bundle").value = picked; }
    $("model").textContent = $("bundle").value;
    if (response.ok) { pickedCard(models.data); }
  } catch (error) {
    $("model").textContent = "(server unreachable)";
  }
}

$("bundle").addEventListener("change", () => {
  $("model").textContent = $("bundle").value;
  localStorage.setItem("edge-et-model", $("bundle").value);
  if (lastModels) { pickedCard(lastModels); }
  newConversation();
});

function newConversation() {
  history = []; pictureSent = false;
  $("conversation").replaceChildren();
  $("conversation-box").hidden = true;
  setStatus("", false);
}

$("image").addEventListener("change", () => usePicture($("image").files[0]));
document.addEventListener("paste", (event) => {
  const file = [...(event.clipboardData || {}).files || []].find((f) => f.type.startsWith("image/"));
  if (file) { event.preventDefault(); usePicture(file); }
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault(); drop.classList.remove("over");
  usePicture(event.dataTransfer.files[0]);
});
$("ask").addEventListener("submit", ask);
$("new").addEventListener("click", newConversation);
$("stop").addEventListener("click", () => controller && controller.abort());
$("key").addEventListener("change", loadModel);
loadModel();
