// Development aid: compare src/vision.js with the Python runtime's preprocessing on cases a
// Python script wrote (pixels, packed embeddings, spans), reporting the largest difference.
//   node tools/check-preprocessing.mjs DIR
import { readFileSync } from "node:fs";
import path from "node:path";

import { pack, prepare } from "../src/vision.js";

const dir = process.argv[2];
const f32 = (name) => { const b = readFileSync(path.join(dir, name)); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)); };
let worst = 0;
for (const c of JSON.parse(readFileSync(path.join(dir, "cases.json")))) {
  const image = { data: new Uint8Array(readFileSync(path.join(dir, `img${c.i}.rgb`))), width: c.w, height: c.h };
  const p = { ...c.cfg, newline: c.cfg.newline ? Float32Array.from(c.cfg.newline) : undefined };
  const got = prepare(image, p);
  const name = c.kind === "llava" ? `l${c.i}.pix` : `i${c.kind.slice(7)}${c.i}.pix`;
  const want = f32(name);
  let diff = got.pixels.length === want.length ? 0 : Infinity;
  for (let k = 0; k < want.length && diff !== Infinity; k++) diff = Math.max(diff, Math.abs(got.pixels[k] - want[k]));
  const spanOk = c.kind === "llava" ? got.span.length === c.span : JSON.stringify(got.span) === JSON.stringify(c.span);
  let packDiff = 0;
  if (c.kind === "llava") {
    const packed = pack("llava_onevision", f32(`l${c.i}.per`), 8, image, p), want2 = f32(`l${c.i}.packed`);
    packDiff = packed.length === want2.length ? 0 : Infinity;
    for (let k = 0; k < want2.length && packDiff !== Infinity; k++) packDiff = Math.max(packDiff, Math.abs(packed[k] - want2[k]));
  }
  worst = Math.max(worst, diff, packDiff);
  console.log(`${c.kind} ${c.w}x${c.h}: views ${got.count}, max |pixel diff| ${diff}, span ${spanOk ? "equal" : "DIFFERS"}, max |packed diff| ${packDiff}`);
}
process.exit(worst === 0 ? 0 : 1);
