// Development aid: run a package's Extract+Think in Node.js with the page's own modules
// (ONNX Runtime Web's WebAssembly kernels, as in the browser). Not used by the page.
//   node tools/run-node.mjs PACKAGE_DIR IMAGE.rgb WIDTH HEIGHT "question" [think_budget]
import { readFile } from "node:fs/promises";
import path from "node:path";

import { fileSource, openPackage } from "../src/package.js";
import { run } from "../src/pipeline.js";

const [dir, rgbPath, width, height, question, budget] = process.argv.slice(2);
const source = {
  label: dir,
  async read(p) { return new Uint8Array(await readFile(path.join(dir, p))); },
};
const pkg = await openPackage(source, (line) => console.error(line));
const image = { data: new Uint8Array(await readFile(rgbPath)), width: Number(width), height: Number(height) };
const result = await run(pkg, { image, question, mode: "extract-think", seed: 0, temperature: 0,
                                think_budget: budget ? Number(budget) : null });
console.log(JSON.stringify(result));
