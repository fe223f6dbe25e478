import { Sampler } from "../src/generate.js";
const rec = [];
const orig = Sampler.prototype.pick;
Sampler.prototype.pick = function (logits) {
  const l = Float32Array.from(logits);
  if (this.s.repeat_penalty !== 1 && this.recent.length) for (const id of new Set(this.recent)) l[id] = l[id] > 0 ? l[id] / this.s.repeat_penalty : l[id] * this.s.repeat_penalty;
  const o = Array.from(l.keys()).sort((a, b) => l[b] - l[a]).slice(0, 3);
  rec.push(o.map((i) => [i, l[i]]));
  return orig.call(this, logits);
};
process.on("exit", () => { require; });
globalThis.__margins = rec;
