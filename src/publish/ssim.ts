/**
 * SSIM (Wang, Bovik, Sheikh, Simoncelli 2004) on luma, as used to judge the publish ladder
 * (bench/publish.mjs): Y = 0.299 R + 0.587 G + 0.114 B (BT.601, alpha ignored), 11×11 Gaussian
 * window with σ = 1.5 (separable, normalised, windows clipped at the borders), K1 = 0.01,
 * K2 = 0.03, L = 255; the result is the mean of the SSIM map. Both images must have the same size.
 */

const K1 = 0.01;
const K2 = 0.03;
const L = 255;
const RADIUS = 5;
const SIGMA = 1.5;

export function ssimLuma(a: Uint8Array, b: Uint8Array, width: number, height: number): number {
  const n = width * height;
  if (a.length < n * 4 || b.length < n * 4) throw new RangeError(`ssimLuma: expected ${n * 4} RGBA bytes per image`);
  const x = luma(a, n);
  const y = luma(b, n);
  const xx = new Float32Array(n);
  const yy = new Float32Array(n);
  const xy = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    xx[i] = x[i]! * x[i]!;
    yy[i] = y[i]! * y[i]!;
    xy[i] = x[i]! * y[i]!;
  }
  const weights = gaussian();
  const scratch = new Float32Array(n);
  const mx = blur(x, width, height, weights, scratch);
  const my = blur(y, width, height, weights, scratch);
  const sxx = blur(xx, width, height, weights, scratch);
  const syy = blur(yy, width, height, weights, scratch);
  const sxy = blur(xy, width, height, weights, scratch);
  const c1 = (K1 * L) ** 2;
  const c2 = (K2 * L) ** 2;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const ux = mx[i]!;
    const uy = my[i]!;
    const vx = sxx[i]! - ux * ux;
    const vy = syy[i]! - uy * uy;
    const cov = sxy[i]! - ux * uy;
    sum += ((2 * ux * uy + c1) * (2 * cov + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
  }
  return sum / n;
}

function luma(rgba: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0, p = 0; i < n; i++, p += 4) out[i] = 0.299 * rgba[p]! + 0.587 * rgba[p + 1]! + 0.114 * rgba[p + 2]!;
  return out;
}

function gaussian(): Float64Array {
  const w = new Float64Array(2 * RADIUS + 1);
  let total = 0;
  for (let i = -RADIUS; i <= RADIUS; i++) total += w[i + RADIUS] = Math.exp(-(i * i) / (2 * SIGMA * SIGMA));
  for (let i = 0; i < w.length; i++) w[i] = w[i]! / total;
  return w;
}

/** Separable Gaussian blur; at the borders the window is clipped and renormalised. */
function blur(src: Float32Array, width: number, height: number, w: Float64Array, tmp: Float32Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let yy = 0; yy < height; yy++) {
    const row = yy * width;
    for (let xx = 0; xx < width; xx++) {
      let acc = 0;
      let norm = 0;
      const from = Math.max(0, xx - RADIUS);
      const to = Math.min(width - 1, xx + RADIUS);
      for (let k = from; k <= to; k++) {
        const weight = w[k - xx + RADIUS]!;
        acc += weight * src[row + k]!;
        norm += weight;
      }
      tmp[row + xx] = acc / norm;
    }
  }
  for (let yy = 0; yy < height; yy++) {
    const from = Math.max(0, yy - RADIUS);
    const to = Math.min(height - 1, yy + RADIUS);
    for (let xx = 0; xx < width; xx++) {
      let acc = 0;
      let norm = 0;
      for (let k = from; k <= to; k++) {
        const weight = w[k - yy + RADIUS]!;
        acc += weight * tmp[k * width + xx]!;
        norm += weight;
      }
      out[yy * width + xx] = acc / norm;
    }
  }
  return out;
}
