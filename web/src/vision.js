// A picture → the views the vision graph takes and the image span the prompt holds, as the
// package's `stages.perception.preprocessing` describes them. Two kinds are implemented:
// llava_onevision (anyres grid, unpadded feature map with newline vectors) and idefics3
// (tiles + global view between delimiter tokens, layout "hf" or "mtmd"). Every step follows
// the Python runtime (edge_et/formats/llava_ov.py, edge_et/formats/idefics3.py) so that the
// pixel values, and so the tokens, are the same.

import { resize } from "./resample.js";

export const KINDS = ["llava_onevision", "idefics3"];

// ---------------------------------------------------------------------------------------
// Normalisation: uint8 views (N, H, W, 3) → float32 (N, 3, H, W): rescale in float64 then cast
// to float32, (x - mean) / std in float32, as Hugging Face's image processors compute it.

export function normalize(views, size, mean, std, rescale) {
  const plane = size * size;
  const out = new Float32Array(views.length * 3 * plane);
  const m = mean.map(Math.fround), s = std.map(Math.fround);
  views.forEach((view, n) => {
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) {
        const scaled = Math.fround(view.data[i * 3 + c] * rescale);
        out[(n * 3 + c) * plane + i] = Math.fround(scaled - m[c]) / s[c];
      }
    }
  });
  return out;
}

function crop(image, top, left, height, width) {
  const data = new Uint8Array(height * width * 3);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * image.width + left) * 3;
    data.set(image.data.subarray(from, from + width * 3), y * width * 3);
  }
  return { data, width, height };
}

// ---------------------------------------------------------------------------------------
// llava_onevision

function bestResolution(height, width, pinpoints) {
  let best = pinpoints[0], bestKept = 0, bestWaste = Infinity;
  for (const [th, tw] of pinpoints) {
    const scale = Math.min(tw / width, th / height);
    const kept = Math.min(Math.trunc(width * scale) * Math.trunc(height * scale), width * height);
    const waste = tw * th - kept;
    if (kept > bestKept || (kept === bestKept && waste < bestWaste)) {
      best = [th, tw]; bestKept = kept; bestWaste = waste;
    }
  }
  return best;
}

function fitSize(height, width, [th, tw]) {
  if (tw / width < th / height) return [Math.min(Math.ceil(height * (tw / width)), th), tw];
  return [th, Math.min(Math.ceil(width * (th / height)), tw)];
}

// Python's round(x, 7) for the unpad box: round half to even at 7 decimals, then int().
function round7(x) {
  return Math.trunc(Number(x.toFixed(7)));
}

function unpadBox(height, width, rows, cols) {
  if (width / height > cols / rows) {
    const newRows = round7(height * (cols / width));
    const pad = Math.floor((rows - newRows) / 2);
    return [pad, rows - pad, 0, cols];
  }
  const newCols = round7(width * (rows / height));
  const pad = Math.floor((cols - newCols) / 2);
  return [0, rows, pad, cols - pad];
}

function shrunk(rows, cols, p) {
  const ratio = Math.sqrt((rows * cols) / (p.max_tiles * p.side ** 2));
  return ratio > 1.1 ? [Math.floor(rows / ratio), Math.floor(cols / ratio)] : null;
}

function llavaGrid(height, width, p) {
  const [gh, gw] = bestResolution(height, width, p.pinpoints);
  return [gh / p.tile, gw / p.tile];
}

const llavaOneVision = {
  views(image, p) {
    const [gh, gw] = bestResolution(image.height, image.width, p.pinpoints);
    const [nh, nw] = fitSize(image.height, image.width, [gh, gw]);
    const canvas = { data: new Uint8Array(gh * gw * 3), width: gw, height: gh }; // black padding
    const top = Math.floor((gh - nh) / 2), left = Math.floor((gw - nw) / 2);
    const fitted = resize(image, nw, nh, p.resample);
    for (let y = 0; y < nh; y++) {
      canvas.data.set(fitted.data.subarray(y * nw * 3, (y + 1) * nw * 3), ((top + y) * gw + left) * 3);
    }
    const views = [resize(image, p.tile, p.tile, p.resample)];
    for (let y = 0; y < gh; y += p.tile) {
      for (let x = 0; x < gw; x += p.tile) views.push(crop(canvas, y, x, p.tile, p.tile));
    }
    return views;
  },
  span(image, p) {
    const [th, tw] = llavaGrid(image.height, image.width, p);
    const [t, b, l, r] = unpadBox(image.height, image.width, th * p.side, tw * p.side);
    let rows = b - t, cols = r - l;
    [rows, cols] = shrunk(rows, cols, p) || [rows, cols];
    return new Array(p.side ** 2 + rows * (cols + 1)).fill(p.image_token_id);
  },
  // per-view embeddings (views, side*side, dim) → the sequence the decoder reads
  pack(perView, dim, image, p) {
    const [th, tw] = llavaGrid(image.height, image.width, p);
    const side = p.side, per = side * side * dim;
    const H = th * side, W = tw * side;
    const at = (r, c) => { // grid (r, c) → offset into perView
      const tr = Math.floor(r / side), tc = Math.floor(c / side);
      return (1 + tr * tw + tc) * per + ((r % side) * side + (c % side)) * dim;
    };
    const [top, bottom, left, right] = unpadBox(image.height, image.width, H, W);
    let rows = bottom - top, cols = right - left;
    let cell = (r, c) => perView.subarray(at(top + r, left + c), at(top + r, left + c) + dim);
    const target = shrunk(rows, cols, p);
    if (target) {
      const resized = bilinear(cell, rows, cols, dim, target[0], target[1]);
      [rows, cols] = target;
      cell = (r, c) => resized.subarray((r * cols + c) * dim, (r * cols + c + 1) * dim);
    }
    const out = new Float32Array((side * side + rows * (cols + 1)) * dim);
    out.set(perView.subarray(0, per), 0);
    let o = per;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) { out.set(cell(r, c), o); o += dim; }
      out.set(p.newline, o); o += dim;
    }
    return out;
  },
};

// torch's interpolate(bilinear, align_corners=False), float32, as llava_ov.bilinear_resize.
function bilinear(cell, hIn, wIn, dim, hOut, wOut) {
  const indices = (sizeIn, sizeOut) => {
    const scale = Math.fround(sizeIn / sizeOut);
    return Array.from({ length: sizeOut }, (_, i) => {
      const src = Math.max(Math.fround(Math.fround(Math.fround(i + 0.5) * scale) - 0.5), 0);
      const lo = Math.min(Math.trunc(src), sizeIn - 1);
      return [lo, Math.min(lo + 1, sizeIn - 1), Math.fround(src - lo)];
    });
  };
  const hs = indices(hIn, hOut), ws = indices(wIn, wOut);
  const out = new Float32Array(hOut * wOut * dim);
  const f = Math.fround;
  for (let i = 0; i < hOut; i++) {
    const [h0, h1, hl] = hs[i];
    for (let j = 0; j < wOut; j++) {
      const [w0, w1, wl] = ws[j];
      const a = cell(h0, w0), b = cell(h0, w1), c = cell(h1, w0), d = cell(h1, w1);
      for (let k = 0; k < dim; k++) {
        const top = f(f(a[k] * f(1 - wl)) + f(b[k] * wl));
        const bottom = f(f(c[k] * f(1 - wl)) + f(d[k] * wl));
        out[(i * wOut + j) * dim + k] = f(top * f(1 - hl)) + f(bottom * hl);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// idefics3 (SmolVLM; edge-et's micro models)

function resizedSize(height, width, longest) {
  const aspect = width / height;
  if (width >= height) {
    width = longest; height = Math.trunc(longest / aspect); height += height % 2;
  } else {
    height = longest; width = Math.trunc(longest * aspect); width += width % 2;
  }
  return [Math.max(height, 1), Math.max(width, 1)];
}

function refinedSize(height, width, p) {
  const tile = p.tile;
  if (p.layout === "mtmd") return [Math.ceil(height / tile) * tile, Math.ceil(width / tile) * tile];
  const aspect = width / height;
  if (width >= height) {
    width = Math.ceil(width / tile) * tile;
    height = Math.max(1, Math.ceil(Math.trunc(width / aspect) / tile)) * tile;
  } else {
    height = Math.ceil(height / tile) * tile;
    width = Math.max(1, Math.ceil(Math.trunc(height * aspect) / tile)) * tile;
  }
  return [height, width];
}

function ideficsFilter(p) {
  return p.layout === "mtmd" ? 1 : p.resample; // libmtmd resamples with Lanczos only
}

function ideficsGrid(height, width, p) {
  if (p.layout === "hf" && !p.do_image_splitting) return [0, 0];
  const [rh, rw] = refinedSize(...resizedSize(height, width, p.longest_edge), p);
  const rows = rh / p.tile, cols = rw / p.tile;
  return p.layout === "hf" && rows === 1 && cols === 1 ? [0, 0] : [rows, cols];
}

function resizeTo(image, height, width, filter) {
  return image.width === width && image.height === height ? image : resize(image, width, height, filter);
}

const idefics3 = {
  views(image, p) {
    const filter = ideficsFilter(p), tile = p.tile;
    const resized = resizeTo(image, ...resizedSize(image.height, image.width, p.longest_edge), filter);
    if (p.layout === "hf" && !p.do_image_splitting) return [resizeTo(resized, tile, tile, filter)];
    const refined = resizeTo(resized, ...refinedSize(resized.height, resized.width, p), filter);
    const [rows, cols] = ideficsGrid(image.height, image.width, p);
    const views = [];
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) views.push(crop(refined, r * tile, c * tile, tile, tile));
    views.push(resizeTo(refined, tile, tile, filter));
    return views;
  },
  span(image, p) {
    const t = p.span_tokens;
    const images = new Array(p.tokens_per_view).fill(t.image);
    const overview = [t.fake, t.global, ...images, t.fake];
    const [rows, cols] = ideficsGrid(image.height, image.width, p);
    if (rows === 0) return overview;
    if (rows > t.tiles.length || cols > t.tiles[0].length) {
      throw new Error(`a ${rows} x ${cols} grid needs <row_${rows}_col_${cols}>, which the tokenizer lacks`);
    }
    const ids = [];
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) ids.push(t.fake, t.tiles[r][c], ...images);
      if (r < rows - 1) ids.push(...t.newline);
    }
    return [...ids, ...t.blank, ...overview];
  },
  pack(perView) { return perView; }, // the views' outputs in view order fill the span
};

const ENCODERS = { llava_onevision: llavaOneVision, idefics3 };

/**
 * The image part of a perception prompt.
 * @param image {data, width, height} RGB uint8
 * @param p  the manifest's preprocessing section (with `newline` loaded as a Float32Array)
 * @returns {{views: Float32Array, count: number, span: number[]}}
 */
export function prepare(image, p) {
  const encoder = ENCODERS[p.kind];
  const views = encoder.views(image, p);
  return { pixels: normalize(views, p.tile, p.mean, p.std, p.rescale), count: views.length,
           span: encoder.span(image, p) };
}

export function pack(kind, perView, dim, image, p) {
  return ENCODERS[kind].pack(perView, dim, image, p);
}
