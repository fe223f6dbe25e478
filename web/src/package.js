// Opening a package: mobile.json first (its format checked), then every file a stage needs,
// each checked against the manifest's sha256 (SubtleCrypto) before it is used, then one
// ONNX Runtime Web session per graph. Any problem is one PackageError with one line to show.

import * as ort from "onnxruntime-web";

import { StageModel } from "./model.js";
import { StageTokenizer } from "./tokenizer.js";
import { KINDS } from "./vision.js";

export const MANIFEST = "mobile.json";
export const FORMAT_NAME = "edge-et.mobile";
export const FORMAT_VERSION = 2; // the newest manifest this page reads
export const OLDEST_VERSION = 2; // format 1 lacked the stage settings (docs/mobile.md)

export class PackageError extends Error {
  constructor(message) { super(message); this.name = "PackageError"; }
}

/** Files by URL: `base` is the package folder's URL (ending in /). */
export function urlSource(base) {
  const root = base.endsWith("/") ? base : base + "/";
  return {
    label: root,
    async read(path) {
      let response;
      try {
        response = await fetch(new URL(path, root));
      } catch (error) {
        throw new PackageError(`cannot fetch ${path} from ${root}: ${error.message}`);
      }
      if (!response.ok) throw new PackageError(`${path} is missing from the package (HTTP ${response.status} at ${root})`);
      return new Uint8Array(await response.arrayBuffer());
    },
  };
}

/** Files the user picked or dropped: a Map of package-relative path → File. */
export function fileSource(files, label) {
  return {
    label,
    async read(path) {
      const file = files.get(path);
      if (!file) throw new PackageError(`${path} is missing from the package folder ${label}`);
      return new Uint8Array(await file.arrayBuffer());
    },
  };
}

/** The manifest, parsed and checked for its format (a newer one is refused, not guessed at). */
export async function readManifest(source) {
  const bytes = await source.read(MANIFEST).catch((error) => {
    throw new PackageError(`no ${MANIFEST} in ${source.label}: not an edge-et mobile package (${error.message})`);
  });
  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new PackageError(`${MANIFEST} is not valid JSON: ${error.message}`);
  }
  const [name, version] = String(manifest.format || "").split("/");
  if (name !== FORMAT_NAME || !/^\d+$/.test(version || "")) {
    throw new PackageError(`${MANIFEST} has format ${JSON.stringify(manifest.format)}, not ${FORMAT_NAME}/N`);
  }
  if (Number(version) > FORMAT_VERSION) {
    throw new PackageError(`${MANIFEST} is format ${manifest.format}, newer than this page reads ` +
                           `(${FORMAT_NAME}/${FORMAT_VERSION}): update the app`);
  }
  if (Number(version) < OLDEST_VERSION) {
    throw new PackageError(`${MANIFEST} is format ${manifest.format}, which lacks the stage settings an app ` +
                           `needs: export the package again (edge-et export mobile --web)`);
  }
  return manifest;
}

async function sha256(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A file of the package, its sha256 checked against the manifest. */
async function checkedRead(source, manifest, path) {
  const row = manifest.files.find((f) => f.file === path);
  if (!row) throw new PackageError(`${MANIFEST} names ${path} but does not list it in "files"`);
  const bytes = await source.read(path);
  if (bytes.length !== row.size_bytes) {
    throw new PackageError(`${path} is ${bytes.length} bytes, the manifest says ${row.size_bytes}: the package is damaged or incomplete`);
  }
  const digest = await sha256(bytes);
  if (digest !== row.sha256) throw new PackageError(`${path} has sha256 ${digest.slice(0, 12)}…, the manifest says ${row.sha256.slice(0, 12)}…: the package is damaged`);
  return bytes;
}

// A NumPy .npy file of little-endian float32 (the image-newline vector).
function readNpy(bytes, path) {
  const magic = String.fromCharCode(...bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== "NUMPY") throw new PackageError(`${path} is not a .npy file`);
  const major = bytes[6];
  const headerLen = major === 1 ? bytes[8] | (bytes[9] << 8) : new DataView(bytes.buffer, bytes.byteOffset + 8, 4).getUint32(0, true);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = new TextDecoder().decode(bytes.subarray(major === 1 ? 10 : 12, start));
  if (!header.includes("'<f4'")) throw new PackageError(`${path}: expected little-endian float32 (<f4), got ${header.trim()}`);
  return new Float32Array(bytes.slice(start).buffer);
}

function sessionOptions(manifest) {
  const web = manifest.web || {};
  return { executionProviders: ["wasm"], graphOptimizationLevel: web.graph_optimization || "all" };
}

async function openSession(bytes, path, manifest) {
  try {
    return await ort.InferenceSession.create(bytes, sessionOptions(manifest));
  } catch (error) {
    const first = String(error.message || error).split("\n")[0];
    throw new PackageError(`ONNX Runtime Web cannot load ${path}: ${first}`);
  }
}

/**
 * Everything the pipeline needs, loaded and checked.
 * @param source urlSource or fileSource
 * @param progress (line) => void
 * @returns {{manifest, perception: StageModel, reasoning: StageModel, loadMs: number}}
 */
export async function openPackage(source, progress = () => {}) {
  const started = performance.now();
  const manifest = await readManifest(source);
  const missing = ["perception", "reasoning"].filter((role) => !manifest.stages?.[role]);
  if (missing.length) throw new PackageError(`${MANIFEST} has no ${missing.join(" or ")} stage: Extract+Think needs both`);
  const models = {};
  for (const role of ["perception", "reasoning"]) {
    const stage = manifest.stages[role];
    const at = (file) => `${role}/${file}`;
    const config = stage.settings;
    progress(`${role}: tokenizer`);
    const tokenizerBytes = await checkedRead(source, manifest, at(config.tokenizer));
    const tokenizer = new StageTokenizer(JSON.parse(new TextDecoder().decode(tokenizerBytes)));
    const sessions = {};
    let preprocessing = null;
    for (const [name, file] of Object.entries(stage.sessions || {})) {
      progress(`${role}: ${file} (checking sha256, loading)`);
      const bytes = await checkedRead(source, manifest, at(file));
      sessions[name] = await openSession(bytes, at(file), manifest);
    }
    if (!sessions.decoder) throw new PackageError(`${MANIFEST}: the ${role} stage names no decoder graph`);
    if (role === "perception") {
      preprocessing = { ...stage.preprocessing };
      if (!KINDS.includes(preprocessing.kind)) {
        throw new PackageError(`vision kind ${JSON.stringify(preprocessing.kind)} is not implemented in this page (it reads ${KINDS.join(", ")})`);
      }
      if (!sessions.vision || !sessions.embed) throw new PackageError(`${MANIFEST}: the perception stage needs its vision and embed graphs`);
      if (preprocessing.newline) preprocessing.newline = readNpy(await checkedRead(source, manifest, at(preprocessing.newline)), at(preprocessing.newline));
    }
    models[role] = new StageModel({ config: { ...config, max_positions: Math.min(stage.n_ctx || config.max_positions, config.max_positions) } },
                                  sessions, tokenizer, preprocessing);
  }
  return { manifest, perception: models.perception, reasoning: models.reasoning, loadMs: performance.now() - started };
}
