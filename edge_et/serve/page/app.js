// The try-it page: reads the picked image as a data: URI and streams /v1/chat/completions
// (server-sent events), filling extraction, reasoning and answer as deltas arrive.
"use strict";
const $ = (id) => document.getElementById(id);
let controller = null;

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

function handle(chunk) {
  if (chunk.error) { throw new Error(chunk.error.message); }
  if (chunk.edge_et && chunk.edge_et.stage) { addTiming(chunk.edge_et.stage, chunk.edge_et.stats); }
  for (const choice of chunk.choices || []) {
    const d = choice.delta || {};
    if (d.extraction) { $("extraction").textContent += d.extraction; }
    if (d.reasoning_content) { $("reasoning").textContent += d.reasoning_content; }
    if (d.content && !d.extraction) { $("content").textContent += d.content; }
    if (choice.finish_reason) {
      const ext = chunk.edge_et || {};
      $("answer").textContent = ext.answer ? "Answer: " + ext.answer : "";
      const t = chunk.timings || {};
      if (t.extraction_cached) { addTiming("extract", { image_cached: true }); }
      // The seed is shown so a run worth keeping can be asked again word for word.
      const seed = ext.seed === undefined ? "" : ` · seed ${ext.seed}`;
      setStatus("done" + (t.queue_s ? ` (queued ${fmt(t.queue_s)} s)` : "") + seed, false);
    }
  }
}

async function ask(event) {
  event.preventDefault();
  for (const id of ["extraction", "reasoning", "content", "answer"]) { $(id).textContent = ""; }
  $("timings").tBodies[0].replaceChildren();
  const file = $("image").files[0];
  if (!file) { setStatus("pick an image first", true); return; }
  const body = {
    model: $("bundle").value || $("model").textContent, stream: true,
    messages: [{ role: "user", content: [
      { type: "image_url", image_url: { url: await readImage(file) } },
      { type: "text", text: $("question").value }] }],
    edge_et: { mode: $("mode").value },
  };
  if ($("budget").value !== "") { body.edge_et.think_budget = Number($("budget").value); }
  if ($("seed").value !== "") { body.seed = Number($("seed").value); }
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
    await readEvents(response.body.getReader());
  } catch (error) {
    setStatus(error.name === "AbortError" ? "stopped" : "error: " + error.message, error.name !== "AbortError");
  } finally {
    $("go").disabled = false; $("stop").disabled = true; controller = null;
  }
}

async function readEvents(reader) {
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
      handle(JSON.parse(data));
    }
  }
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
  } catch (error) {
    $("model").textContent = "(server unreachable)";
  }
}

$("bundle").addEventListener("change", () => {
  $("model").textContent = $("bundle").value;
  localStorage.setItem("edge-et-model", $("bundle").value);
});

$("image").addEventListener("change", () => {
  const file = $("image").files[0];
  if (file) { $("preview").src = URL.createObjectURL(file); $("preview").hidden = false; }
});
$("ask").addEventListener("submit", ask);
$("stop").addEventListener("click", () => controller && controller.abort());
$("key").addEventListener("change", loadModel);
loadModel();
