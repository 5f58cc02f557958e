#!/usr/bin/env node
/**
 * view_image encoder: time and bytes of `makeThumbnail` (src/assets/thumbnail.ts, maxDim 512,
 * budget 100,000 base64 characters) against a baseline measured in the same run, the cheapest
 * thing that could work: decode, one photon resize to 512 px (Triangle), one JPEG at quality 70,
 * no budget check.
 *
 * Inputs are deterministic photo-like images (smooth colour fields plus per-pixel noise) at 512,
 * 1024, 2048 and 4096 px, encoded as PNG (4096 as JPEG q92: a noisy 4096² PNG is ~50 MB). Each
 * figure is the median of --runs timed runs after one warm-up. Runs in Node 22 (photon's node
 * build, synchronous init; this file imports the TypeScript module directly). See bench/README.md.
 */
import { parseArgs } from "node:util";
import { PhotonImage, SamplingFilter, resize } from "@cf-wasm/photon";
import { makeThumbnail } from "../src/assets/thumbnail.ts";
import { photoLike } from "../test/support/photo-like.ts";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    "max-dim": { type: "string", default: "512" },
    budget: { type: "string", default: "100000" },
    noise: { type: "string", default: "24" },
    linear: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const RUNS = Number(args.runs);
const MAX_DIM = Number(args["max-dim"]);
const BUDGET = Number(args.budget);
const NOISE = Number(args.noise);
const SIZES = [512, 1024, 2048, 4096];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const b64 = (n) => 4 * Math.ceil(n / 3);

function makeInput(size) {
  const image = new PhotonImage(photoLike(size, size, size * 31 + 7, NOISE), size, size);
  try {
    return size >= 4096
      ? { bytes: image.get_bytes_jpeg(92), format: "JPEG q92" }
      : { bytes: image.get_bytes(), format: "PNG" };
  } finally {
    image.free();
  }
}

/** Decode, one resize to maxDim (Triangle), one JPEG q70. No budget, no transparency handling. */
function baseline(bytes) {
  const source = PhotonImage.new_from_byteslice(bytes);
  try {
    const w = source.get_width();
    const h = source.get_height();
    const scale = Math.min(1, MAX_DIM / Math.max(w, h));
    const tw = Math.max(1, Math.round(w * scale));
    const th = Math.max(1, Math.round(h * scale));
    if (tw === w && th === h) return { bytes: source.get_bytes_jpeg(70).length, width: tw, height: th };
    const small = resize(source, tw, th, SamplingFilter.Triangle);
    try {
      return { bytes: small.get_bytes_jpeg(70).length, width: tw, height: th };
    } finally {
      small.free();
    }
  } finally {
    source.free();
  }
}

function timed(fn) {
  fn(); // warm-up (first call compiles/grows wasm memory)
  const times = [];
  let result;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    result = fn();
    times.push(performance.now() - t0);
  }
  return { ms: median(times), result };
}

const rows = [];
for (const size of SIZES) {
  const { bytes, format } = makeInput(size);
  const base = timed(() => baseline(bytes));
  const thumb = timed(() => makeThumbnail(bytes, { maxDim: MAX_DIM, maxB64Chars: BUDGET }));
  const linear = args.linear
    ? timed(() => makeThumbnail(bytes, { maxDim: MAX_DIM, maxB64Chars: BUDGET, strategy: "linear" }))
    : undefined;
  const t = thumb.result;
  rows.push({
    size,
    input: `${format} ${(bytes.length / 1e6).toFixed(2)} MB`,
    baseline: {
      ms: base.ms,
      bytes: base.result.bytes,
      b64: b64(base.result.bytes),
      fits: b64(base.result.bytes) <= BUDGET,
      width: base.result.width,
      height: base.result.height,
    },
    thumbnail: {
      ms: thumb.ms,
      bytes: t.bytes,
      b64: t.base64.length,
      quality: t.quality,
      width: t.width,
      height: t.height,
      attempts: t.attempts,
    },
    linear: linear && { ms: linear.ms, attempts: linear.result.attempts, same: linear.result.base64 === t.base64 },
  });
  if (process.stderr.isTTY) process.stderr.write(`  measured ${size}px\n`);
}

const pad = (v, n) => String(v).padStart(n);
console.log(
  `view_image encoder vs one-shot baseline (maxDim ${MAX_DIM}, budget ${BUDGET} base64 chars, median of ${RUNS} runs, node ${process.version})`,
);
console.log(`baseline = decode + photon resize (Triangle) + JPEG q70, one encode, no budget check`);
console.log("");
console.log(
  `${"input".padEnd(22)} ${pad("base ms", 8)} ${pad("base B", 8)} ${pad("fits", 5)} | ${pad("thumb ms", 8)} ${pad("thumb B", 8)} ${pad("q", 3)} ${pad("size", 9)} ${pad("tries", 5)} | ${pad("time x", 6)} ${pad("bytes x", 7)}` +
    (args.linear ? ` | ${pad("linear ms", 9)} ${pad("tries", 5)} same` : ""),
);
for (const r of rows) {
  const b = r.baseline;
  const t = r.thumbnail;
  console.log(
    `${`${r.size}px ${r.input}`.padEnd(22)} ${pad(b.ms.toFixed(1), 8)} ${pad(b.bytes, 8)} ${pad(b.fits ? "yes" : "NO", 5)} | ${pad(t.ms.toFixed(1), 8)} ${pad(t.bytes, 8)} ${pad(t.quality ?? "png", 3)} ${pad(`${t.width}x${t.height}`, 9)} ${pad(t.attempts, 5)} | ${pad((t.ms / b.ms).toFixed(2), 6)} ${pad((t.bytes / b.bytes).toFixed(2), 7)}` +
      (r.linear
        ? ` | ${pad(r.linear.ms.toFixed(1), 9)} ${pad(r.linear.attempts, 5)} ${r.linear.same ? "yes" : "NO"}`
        : ""),
  );
}
console.log("");
console.log("time x = thumbnail ms / baseline ms; bytes x = thumbnail bytes / baseline bytes; tries = encodes made.");
if (args.json) console.log(JSON.stringify({ maxDim: MAX_DIM, budget: BUDGET, runs: RUNS, rows }));
