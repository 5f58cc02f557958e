// Deterministic, photo-like test images shared by the worker tests and the benchmarks (plain,
// erasable TypeScript, so Node runs it directly).

/** mulberry32: a small deterministic PRNG giving 32-bit integers. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/**
 * A photo-like RGBA picture: smooth colour fields (two octaves of bilinear value noise, fixed cell
 * counts so bigger images are the same scene at a higher resolution) plus per-pixel noise of
 * about ±`noise`, which keeps JPEG from compressing it well. Same arguments → same pixels.
 */
export function photoLike(
  width: number,
  height: number,
  seed: number,
  noise = 30,
  alpha?: (x: number, y: number) => number,
): Uint8Array {
  const random = mulberry32(seed);
  const octaves = (
    [
      [4, 1],
      [23, 0.35],
    ] as const
  ).map(([cells, amp]) => ({
    cells,
    grid: Float32Array.from({ length: (cells + 1) * (cells + 1) * 3 }, () => (random() / 2 ** 32 - 0.5) * 255 * amp),
    ix: Int32Array.from({ length: width }, (_, x) => ((x * cells) / width) | 0),
    tx: Float32Array.from({ length: width }, (_, x) => (x * cells) / width - (((x * cells) / width) | 0)),
  }));
  const out = new Uint8Array(width * height * 4);
  const row = new Float32Array(width * 3);
  const scale = (2 * noise) / 255;
  for (let y = 0; y < height; y++) {
    row.fill(128);
    for (const { cells, grid, ix, tx } of octaves) {
      const fy = (y * cells) / height;
      const iy = fy | 0;
      const ty = fy - iy;
      for (let x = 0; x < width; x++) {
        const i00 = (iy * (cells + 1) + ix[x]!) * 3;
        const i01 = i00 + (cells + 1) * 3;
        const t = tx[x]!;
        for (let c = 0; c < 3; c++) {
          const top = grid[i00 + c]! + (grid[i00 + 3 + c]! - grid[i00 + c]!) * t;
          const bottom = grid[i01 + c]! + (grid[i01 + 3 + c]! - grid[i01 + c]!) * t;
          row[x * 3 + c]! += top + (bottom - top) * ty;
        }
      }
    }
    for (let x = 0, o = y * width * 4; x < width; x++, o += 4) {
      const bits = random(); // one draw, three channels
      out[o] = row[x * 3]! + ((bits & 255) - 127.5) * scale;
      out[o + 1] = row[x * 3 + 1]! + (((bits >>> 8) & 255) - 127.5) * scale;
      out[o + 2] = row[x * 3 + 2]! + (((bits >>> 16) & 255) - 127.5) * scale;
      out[o + 3] = alpha ? alpha(x, y) : 255;
    }
  }
  return out;
}
