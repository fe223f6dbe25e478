// The page: pick or name a package, pick a picture, run Extract+Think, stream the tokens.
// Everything edge-et specific comes from the package's mobile.json (src/package.js).

import * as ort from "onnxruntime-web";

import { PackageError, fileSource, openPackage, urlSource } from "./package.js";
import { run } from "./pipeline.js";

// The WebAssembly files are served from this app's own node_modules, never from a CDN.
ort.env.wasm.wasmPaths = new URL("../node_modules/onnxruntime-web/dist/", import.meta.url).href;
// Threads need a cross-origin isolated page (serve.mjs sends the headers); else one thread.
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
// ONNX Runtime in a worker: loading a 1 GiB graph and every decoder step would otherwise hold
// the page's main thread (no streamed text, no Stop, a frozen tab for minutes).
ort.env.wasm.proxy = true;

const $ = (id) => document.getElementById(id);
const state = { pkg: null, abort: null };
// What the last run gave, for scripts and tests (the page shows the same).
window.edgeEt = { result: null, error: null, loaded: null };

function showError(error) {
  const line = error instanceof PackageError ? error.message : `${error.name || "Error"}: ${error.message || error}`;
  $("error").textContent = line;
  $("status").textContent = "error";
  window.edgeEt.error = line;
}

function clearError() { $("error").textContent = ""; window.edgeEt.error = null; }

async function load(source) {
  clearError();
  $("go").disabled = true;
  await state.pkg?.perception.release();
  await state.pkg?.reasoning.release();
  state.pkg = null;
  $("status").textContent = "loading the package";
  try {
    state.pkg = await openPackage(source, (line) => { $("package-status").textContent = line; });
  } catch (error) {
    $("package-status").textContent = "";
    showError(error);
    return;
  }
  const m = state.pkg.manifest;
  $("package-status").textContent = `${m.name}: ${m.format}, reasoner ${m.reasoning_quant}` +
    `${m.stages.reasoning.thinking ? " (thinking)" : ""}, loaded in ${(state.pkg.loadMs / 1000).toFixed(1)} s, ` +
    `${ort.env.wasm.numThreads} thread(s)`;
  $("status").textContent = "package loaded";
  window.edgeEt.loaded = { name: m.name, load_ms: state.pkg.loadMs, threads: ort.env.wasm.numThreads };
  $("go").disabled = false;
}

$("load-url").addEventListener("click", () => load(urlSource($("package-url").value.trim())));

function fromFiles(files) {
  // webkitRelativePath is "FOLDER/sub/file": the package's own paths drop the first part.
  const map = new Map();
  let root = "";
  for (const file of files) {
    const rel = file.webkitRelativePath || file.name;
    const parts = rel.split("/");
    root = parts.length > 1 ? parts[0] : root;
    map.set(parts.length > 1 ? parts.slice(1).join("/") : rel, file);
  }
  return fileSource(map, root || "the picked folder");
}

$("package-folder").addEventListener("change", (e) => load(fromFiles(e.target.files)));

// A dropped folder: walk its entries into (path → File).
async function walk(entry, prefix, map) {
  if (entry.isFile) {
    map.set(prefix + entry.name, await new Promise((ok, fail) => entry.file(ok, fail)));
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
      if (!batch.length) break;
      for (const child of batch) await walk(child, prefix + entry.name + "/", map);
    }
  }
}

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const entry = e.dataTransfer.items[0]?.webkitGetAsEntry();
  if (!entry?.isDirectory) { showError(new PackageError("drop the package's folder (the one holding mobile.json)")); return; }
  const found = new Map();
  await walk(entry, "", found);
  const map = new Map([...found].map(([p, f]) => [p.split("/").slice(1).join("/"), f]));
  load(fileSource(map, entry.name));
});

// The picture as RGB bytes, EXIF orientation applied, transparency over white (as the manifest's
// pipeline.image_input says; Pillow's alpha_composite arithmetic).
async function readPicture(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image", colorSpaceConversion: "none",
                                                 premultiplyAlpha: "none" });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { colorSpace: "srgb" });
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const data = new Uint8Array(bitmap.width * bitmap.height * 3);
  for (let i = 0, o = 0; i < rgba.length; i += 4, o += 3) {
    const a = rgba[i + 3];
    for (let c = 0; c < 3; c++) {
      if (a === 255) { data[o + c] = rgba[i + c]; continue; }
      const outa255 = a * 255 + 255 * (255 - a);
      const coef1 = Math.floor((a * 255 * 255 * 128) / outa255), coef2 = 255 * 128 - coef1;
      const tmp = rgba[i + c] * coef1 + 255 * coef2 + (0x80 << 7);
      data[o + c] = (((tmp >> 8) + tmp) >> 8) >> 7;
    }
  }
  return { data, width: bitmap.width, height: bitmap.height };
}

function number(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function timingRow(stage, s) {
  const row = document.createElement("tr");
  row.dataset.stage = stage;
  const tokS = s.generated_tokens && s.decode_ms ? (s.generated_tokens / (s.decode_ms / 1000)).toFixed(1) : "";
  for (const v of [stage, s.prompt_tokens, s.image_encode_ms != null ? (s.image_encode_ms / 1000).toFixed(2) : "",
                   (s.prefill_ms / 1000).toFixed(2), s.generated_tokens, tokS, s.stop_reason]) {
    const cell = document.createElement(v === stage ? "th" : "td");
    cell.textContent = v ?? "";
    row.append(cell);
  }
  $("timings").tBodies[0].append(row);
}

$("go").addEventListener("click", async () => {
  clearError();
  const file = $("image").files[0];
  if (!file) { showError(new Error("pick a picture first")); return; }
  const question = $("question").value;
  if (!question.trim()) { showError(new Error("the question is empty")); return; }
  for (const id of ["hint-used", "extraction", "reasoning", "answer"]) $(id).textContent = "";
  $("timings").tBodies[0].replaceChildren();
  window.edgeEt.result = null;
  $("go").disabled = true;
  $("stop").disabled = false;
  state.abort = new AbortController();
  try {
    const image = await readPicture(file);
    const request = { image, question, hint: $("hint").value, mode: "extract-think", seed: number("seed") ?? 0,
                      temperature: number("temperature"), think_budget: number("think-budget") };
    const started = performance.now();
    const result = await run(state.pkg, request, {
      stage: (name) => { $("status").textContent = name === "extract" ? "extracting" : "reasoning"; },
      text: (stage, text) => { $(stage === "extract" ? "extraction" : "reasoning").textContent += text; },
      done: timingRow,
    }, state.abort.signal);
    $("hint-used").textContent = result.hint;
    $("extraction").textContent = result.extraction;
    $("answer").textContent = `Answer: ${result.answer}`;
    result.total_ms = performance.now() - started;
    window.edgeEt.result = result;
    $("status").textContent = `done in ${(result.total_ms / 1000).toFixed(1)} s, seed ${result.seed}`;
  } catch (error) {
    if (error.name === "StopRun") $("status").textContent = "stopped";
    else showError(error);
  } finally {
    $("go").disabled = false;
    $("stop").disabled = true;
  }
});

$("stop").addEventListener("click", () => state.abort?.abort());

// ?package=URL loads a package at once (a link to a served package, and the tests).
const given = new URLSearchParams(location.search).get("package");
if (given) {
  $("package-url").value = given;
  load(urlSource(new URL(given, location.href).href));
}
