// Serve the page (this folder) and, with --package DIR, one package folder under /package/,
// on 127.0.0.1 only, with the headers that make the page cross-origin isolated (WebAssembly
// threads need them). No dependencies: Node.js's own http module.
//   node serve.mjs [--package DIR] [--port 8000]
// prints the page's URL (with ?package= when a package is given) on its first line.
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : fallback; };
const packageDir = option("--package", null);
const port = Number(option("--port", "8000"));
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
                ".json": "application/json", ".wasm": "application/wasm", ".css": "text/css",
                ".png": "image/png", ".jpg": "image/jpeg" };

function resolve(urlPath) {
  const clean = decodeURIComponent(urlPath.split("?")[0]);
  const [root, rest] = packageDir && clean.startsWith("/package/")
    ? [path.resolve(packageDir), clean.slice("/package/".length)] : [here, clean.slice(1) || "index.html"];
  const full = path.resolve(root, rest);
  return full === root || full.startsWith(root + path.sep) ? full : null; // never outside the roots
}

const server = createServer(async (request, response) => {
  const file = resolve(request.url);
  const headers = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                    "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "no-store" };
  try {
    const info = file && await stat(file);
    if (!info?.isFile()) throw new Error("not a file");
    response.writeHead(200, { ...headers, "Content-Type": TYPES[path.extname(file)] || "application/octet-stream",
                              "Content-Length": info.size });
    createReadStream(file).pipe(response);
  } catch {
    response.writeHead(404, { ...headers, "Content-Type": "text/plain" });
    response.end("not found\n");
  }
});
server.listen(port, "127.0.0.1", () => {
  const url = `http://127.0.0.1:${server.address().port}/`;
  console.log(packageDir ? `${url}?package=${encodeURIComponent(url + "package/")}` : url);
});
