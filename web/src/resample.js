// Pillow's Image.resize for RGB uint8 pictures, integer for integer (libImaging/Resample.c):
// the package's preprocessing names Pillow's filters, and the Python runtime resizes with Pillow,
// so the page must produce the same bytes, not merely a similar picture (a canvas drawImage
// does not). Two passes, horizontal then vertical, each a convolution whose coefficients are
// normalised to 22-bit fixed point, the sums rounded and clipped to 0..255.

const PRECISION_BITS = 32 - 8 - 2;

function bicubic(x) {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

function sinc(x) {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}

const FILTERS = {
  // Pillow's resampling constants: NEAREST 0 is not a convolution and is not offered here.
  1: { name: "lanczos", support: 3, fn: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
  2: { name: "bilinear", support: 1, fn: (x) => { x = Math.abs(x); return x < 1 ? 1 - x : 0; } },
  3: { name: "bicubic", support: 2, fn: bicubic },
  4: { name: "box", support: 0.5, fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  5: {
    name: "hamming", support: 1, fn: (x) => {
      x = Math.abs(x);
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x *= Math.PI;
      return (Math.sin(x) / x) * (Math.fround(0.54) + Math.fround(0.46) * Math.cos(x));
    },
  },
};

export const PILLOW_FILTERS = Object.fromEntries(Object.entries(FILTERS).map(([k, v]) => [v.name, Number(k)]));

function coefficients(inSize, outSize, filter) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const kk = new Int32Array(outSize * ksize);
  const bounds = new Int32Array(outSize * 2);
  const weights = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * ss);
      weights[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? weights[x] / ww : weights[x];
      kk[xx * ksize + x] = k < 0 ? Math.trunc(-0.5 + k * (1 << PRECISION_BITS))
        : Math.trunc(0.5 + k * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { kk, bounds, ksize };
}

function clip8(ss) {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function horizontalPass(src, width, rows, offset, { kk, bounds, ksize }) {
  const out = new Uint8Array(rows * width * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < rows; yy++) {
    const row = (yy + offset) * src.width * 3;
    for (let xx = 0; xx < width; xx++) {
      const xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1], k = xx * ksize;
      let s0 = half, s1 = half, s2 = half;
      for (let x = 0; x < xmax; x++) {
        const p = row + (x + xmin) * 3, w = kk[k + x];
        s0 += src.data[p] * w; s1 += src.data[p + 1] * w; s2 += src.data[p + 2] * w;
      }
      const o = (yy * width + xx) * 3;
      out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2);
    }
  }
  return { data: out, width, height: rows };
}

function verticalPass(src, height, { kk, bounds, ksize }) {
  const width = src.width;
  const out = new Uint8Array(height * width * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < height; yy++) {
    const ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1], k = yy * ksize;
    for (let xx = 0; xx < width; xx++) {
      let s0 = half, s1 = half, s2 = half;
      for (let y = 0; y < ymax; y++) {
        const p = ((y + ymin) * width + xx) * 3, w = kk[k + y];
        s0 += src.data[p] * w; s1 += src.data[p + 1] * w; s2 += src.data[p + 2] * w;
      }
      const o = (yy * width + xx) * 3;
      out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2);
    }
  }
  return { data: out, width, height };
}

/**
 * Resize an RGB picture as Pillow 13 does (`resample_passes` in the manifest: the vertical pass
 * runs first when the height shrinks by more than twice what the width does, else the
 * horizontal pass first, over only the rows the vertical pass reads).
 * @param {{data: Uint8Array, width: number, height: number}} image H x W x 3, row-major
 * @param {number} width, height  the new size
 * @param {number} resample  Pillow's filter constant (1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)
 * @returns {{data: Uint8Array, width: number, height: number}}
 */
export function resize(image, width, height, resample) {
  const filter = FILTERS[resample];
  if (!filter) throw new Error(`resampling filter ${resample} is not one of Pillow's convolutions`);
  if (image.width === width && image.height === height) return { data: image.data.slice(), width, height };
  const needH = width !== image.width, needV = height !== image.height;
  const shrinkV = image.height - height;
  const horizontalFirst = !(shrinkV > 0 && shrinkV > (image.width - width) * 2);
  const vert = needV || (needH && horizontalFirst) ? coefficients(image.height, height, filter) : null;
  const horiz = needH ? coefficients(image.width, width, filter) : null;
  let src = image;
  if (horizontalFirst) {
    if (needH) {
      // Only the rows the vertical pass reads are resampled horizontally.
      const first = vert.bounds[0];
      const last = vert.bounds[height * 2 - 2] + vert.bounds[height * 2 - 1];
      for (let i = 0; i < height; i++) vert.bounds[i * 2] -= first;
      src = horizontalPass(src, width, last - first, first, horiz);
    }
    if (needV) src = verticalPass(src, height, vert);
  } else {
    if (needV) src = verticalPass(src, height, vert);
    if (needH) src = horizontalPass(src, width, height, 0, horiz);
  }
  return src;
}
