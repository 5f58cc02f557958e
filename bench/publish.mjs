#!/usr/bin/env node
// Benchmark of the publish encoder (src/publish/encode.ts) against the original server's ladder.
// See bench/publish.md for how to get the input photos and how to read the output.
//
//   node bench/publish.mjs [--src DIR] [--quick]
//
// For each photo at 1024x1024, 1536x1024 and 2048x2048 (PNG) and each budget (600,000 and
// 150,000 bytes) it runs, in the same process:
//   ours      encodeForWeb(format "webp"): libwebp (jsquash) probes at method 2, final encode at method 5, searched ladder
//   ours-jpg  encodeForWeb(format "jpeg"): photon JPEG, searched ladder (the .jpg target path)
//   pillow    the original's ladder with the same libwebp: scales 1, .9, .75, .6, .5 (Lanczos3,
//             int(w*f)) x quality 85 → 35 step 10, method 5, walked in order, first fit wins
//   jpeg      plain photon JPEG, same linear ladder (quality 85 → 35 step 10, same scales)
// and prints the chosen quality/scale, bytes, SSIM against the source (luma, Gaussian 11x11,
// output upscaled back to the source size with Lanczos3 when it was downscaled), encodes and CPU ms
// (process.cpuUsage, decode of the PNG included). Then peak WASM memory per stage, measured in a
// fresh worker thread per size (WASM memory never shrinks, so each measurement needs its own).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { PhotonImage, SamplingFilter, resize } from "@cf-wasm/photon";
import webpFactory from "@jsquash/webp/codec/enc/webp_enc_simd.js";
import { defaultOptions as webpDefaults } from "@jsquash/webp/meta.js";
import { encodeForWeb, setWebpEncoderModule } from "../src/publish/encode.ts";
import { ssimLuma } from "../src/publish/ssim.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const WEBP_WASM = join(root, "node_modules/@jsquash/webp/codec/enc/webp_enc_simd.wasm");
const webpModule = new WebAssembly.Module(readFileSync(WEBP_WASM));
setWebpEncoderModule(webpModule);

const BUDGETS = [600_000, 150_000];
const SIZES = [
  [1024, 1024],
  [1536, 1024],
  [2048, 2048],
];
const BASE_SCALES = [1, 0.9, 0.75, 0.6, 0.5];
const BASE_QUALITIES = [85, 75, 65, 55, 45, 35];
/** Photographs from Debian's mate-backgrounds 1.26.0-1 (bookworm), plus one painting as a dense-detail case. */
const PHOTOS = [
  ["Wood", "mate/nature/Wood.jpg", "photo"],
  ["TwoWings", "mate/nature/TwoWings.jpg", "photo"],
  ["LadyBird", "mate/nature/LadyBird.jpg", "photo"],
  ["Garden", "mate/nature/Garden.jpg", "photo"],
  ["Storm", "mate/nature/Storm.jpg", "photo"],
  ["Dune", "mate/nature/Dune.jpg", "photo"],
  ["Elephants", "mate/abstract/Elephants_3840x2160.jpg", "painting"],
];

async function main() {
  const args = process.argv.slice(2);
  const src = args.includes("--src") ? args[args.indexOf("--src") + 1] : "/tmp/wp/root/usr/share/backgrounds";
  const quick = args.includes("--quick");
  const inputs = prepareInputs(src, quick);
  console.log(
    `# publish bench: node ${process.version}, ${inputs.synthetic ? "SYNTHETIC photo-like inputs (no wallpaper package found)" : `photos from ${src}`}`,
  );
  console.log(
    `# ${inputs.images.length} images x ${SIZES.length} sizes x ${BUDGETS.length} budgets; CPU = process.cpuUsage (user+sys) of one publish incl. PNG decode\n`,
  );

  // Warm up JIT and both WASM codecs so the first case is not charged for compilation.
  {
    const warm = inputs.images[0].files[0].png;
    await encodeForWeb({ bytes: warm, sourceMime: "image/png", format: "webp", maxBytes: 100_000 });
    await pillowLadder(warm, 100_000);
    photonJpegLadder(warm, 100_000);
  }

  const rows = [];
  console.log(
    "| image | size | budget | ours webp: q / scale / bytes / SSIM / enc / CPU ms | pillow ladder: q / scale / bytes / SSIM / enc / CPU ms | ours jpg: q / scale / bytes / SSIM / enc / CPU ms | photon jpeg linear: q / scale / bytes / SSIM / enc / CPU ms |",
  );
  console.log("|---|---|---|---|---|---|---|");
  for (const image of inputs.images) {
    for (const file of image.files) {
      const source = decodePng(file.png);
      for (const budget of BUDGETS) {
        const ours = await measure(
          () => encodeForWeb({ bytes: file.png, sourceMime: "image/png", format: "webp", maxBytes: budget }),
          (r) => r,
        );
        const pillow = await measure(
          () => pillowLadder(file.png, budget),
          (r) => r,
        );
        const oursJpg = await measure(
          () => encodeForWeb({ bytes: file.png, sourceMime: "image/png", format: "jpeg", maxBytes: budget }),
          (r) => r,
        );
        const jpeg = await measure(
          () => photonJpegLadder(file.png, budget),
          (r) => r,
        );
        for (const m of [ours, pillow, oursJpg, jpeg]) m.ssim = m.bytes ? ssimAgainst(source, m.bytes) : NaN;
        const row = { image: image.name, size: `${file.w}x${file.h}`, budget, ours, pillow, oursJpg, jpeg };
        rows.push(row);
        console.log(
          `| ${row.image} | ${row.size} | ${budget} | ${cell(ours)} | ${cell(pillow)} | ${cell(oursJpg)} | ${cell(jpeg)} |`,
        );
      }
    }
  }
  summarise(rows);
  await memory(inputs);
}

// ---------------------------------------------------------------------------------------------
// Inputs

function prepareInputs(src, quick) {
  const cache = join(tmpdir(), "comfyui-mcp-edge-publish-bench");
  mkdirSync(cache, { recursive: true });
  const available = PHOTOS.filter(([, path]) => existsSync(join(src, path)));
  const synthetic = available.length < 5;
  const list = synthetic ? Array.from({ length: 5 }, (_, k) => [`synthetic-${k + 1}`, null, "SYNTHETIC"]) : available;
  const images = [];
  for (const [name, path, kind] of quick ? list.slice(0, 2) : list) {
    const files = [];
    for (const [w, h] of SIZES) {
      const file = join(cache, `${name}-${w}x${h}.png`);
      if (!existsSync(file)) {
        const rgba = path
          ? cropResize(readFileSync(join(src, path)), w, h)
          : syntheticPhoto(w, h, name.length * 7919 + w);
        const img = new PhotonImage(rgba, w, h);
        writeFileSync(file, img.get_bytes());
        img.free();
      }
      files.push({ w, h, png: new Uint8Array(readFileSync(file)) });
    }
    images.push({ name: kind === "photo" ? name : `${name} (${kind})`, files });
  }
  return { images, synthetic };
}

/** Centre crop to the target aspect ratio, then Lanczos3 to the target size. */
function cropResize(bytes, w, h) {
  const img = PhotonImage.new_from_byteslice(bytes);
  const sw = img.get_width();
  const sh = img.get_height();
  const k = Math.max(w / sw, h / sh);
  const rw = Math.round(sw * k);
  const rh = Math.round(sh * k);
  const r = resize(img, rw, rh, SamplingFilter.Lanczos3);
  const px = r.get_raw_pixels();
  img.free();
  r.free();
  const out = new Uint8Array(w * h * 4);
  const x0 = (rw - w) >> 1;
  const y0 = (rh - h) >> 1;
  for (let y = 0; y < h; y++) out.set(px.subarray(((y0 + y) * rw + x0) * 4, ((y0 + y) * rw + x0 + w) * 4), y * w * 4);
  return out;
}

/** Fallback only: gradients, soft blobs, edges and grain (clearly labelled SYNTHETIC in the output). */
function syntheticPhoto(w, h, seed) {
  let s = seed >>> 0 || 1;
  const rand = () => (s = (s * 1664525 + 1013904223) >>> 0) / 4294967296;
  const blobs = Array.from({ length: 12 }, () => ({
    x: rand() * w,
    y: rand() * h,
    r: (0.05 + rand() * 0.3) * w,
    c: [rand() * 255, rand() * 255, rand() * 255],
  }));
  const px = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let c = [(x / w) * 180 + 40, (y / h) * 160 + 50, 200 - ((x + y) / (w + h)) * 150];
      for (const b of blobs) {
        const d = Math.hypot(x - b.x, y - b.y) / b.r;
        const k = Math.exp(-d * d) * 0.7;
        c = c.map((v, i) => v + (b.c[i] - v) * k);
      }
      const grain = (rand() - 0.5) * 20;
      const i = (y * w + x) * 4;
      for (let j = 0; j < 3; j++) px[i + j] = Math.max(0, Math.min(255, Math.round(c[j] + grain)));
      px[i + 3] = 255;
    }
  }
  return px;
}

// ---------------------------------------------------------------------------------------------
// Baselines

let baselineEncoder;
async function pillowEncoder() {
  baselineEncoder ??= await webpFactory({
    noInitialRun: true,
    instantiateWasm: (imports, done) => {
      const instance = new WebAssembly.Instance(webpModule, imports);
      done(instance);
      return instance.exports;
    },
  });
  return baselineEncoder;
}

/** The original's ladder (original-server.md §11.6) with the same libwebp, method 5 like Pillow's call. */
async function pillowLadder(png, budget) {
  const encoder = await pillowEncoder();
  const src = decodePng(png);
  let attempts = 0;
  for (const f of BASE_SCALES) {
    const { w, h, pixels } = scaled(src, f);
    for (const q of BASE_QUALITIES) {
      attempts++;
      const out = encoder.encode(pixels, w, h, { ...webpDefaults, quality: q, method: 5 });
      if (out.length <= budget) return { bytes: out, quality: q, scale: f, attempts };
    }
  }
  return { bytes: null, quality: null, scale: null, attempts };
}

function photonJpegLadder(png, budget) {
  const src = decodePng(png);
  let attempts = 0;
  for (const f of BASE_SCALES) {
    const { w, h, pixels } = scaled(src, f);
    const img = new PhotonImage(pixels, w, h);
    try {
      for (const q of BASE_QUALITIES) {
        attempts++;
        const out = img.get_bytes_jpeg(q);
        if (out.length <= budget) return { bytes: out, quality: q, scale: f, attempts };
      }
    } finally {
      img.free();
    }
  }
  return { bytes: null, quality: null, scale: null, attempts };
}

function scaled(src, f) {
  if (f === 1) return { w: src.w, h: src.h, pixels: src.pixels };
  const w = Math.floor(src.w * f);
  const h = Math.floor(src.h * f);
  const from = new PhotonImage(src.pixels, src.w, src.h);
  const to = resize(from, w, h, SamplingFilter.Lanczos3);
  from.free();
  const pixels = to.get_raw_pixels();
  to.free();
  return { w, h, pixels };
}

// ---------------------------------------------------------------------------------------------
// Measuring

function decodePng(bytes) {
  const img = PhotonImage.new_from_byteslice(bytes);
  const out = { w: img.get_width(), h: img.get_height(), pixels: img.get_raw_pixels() };
  img.free();
  return out;
}

async function measure(run) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let r;
  try {
    r = await run();
  } catch (error) {
    r = { bytes: null, quality: null, scale: null, attempts: NaN, error: error.reason ?? error.message };
  }
  const cpu = process.cpuUsage(cpu0);
  return {
    bytes: r.bytes,
    quality: r.quality,
    scale: r.scale,
    attempts: r.attempts,
    error: r.error,
    wall: performance.now() - t0,
    cpu: (cpu.user + cpu.system) / 1000,
  };
}

function ssimAgainst(source, bytes) {
  const img = PhotonImage.new_from_byteslice(bytes);
  let pixels;
  if (img.get_width() !== source.w || img.get_height() !== source.h) {
    const up = resize(img, source.w, source.h, SamplingFilter.Lanczos3);
    pixels = up.get_raw_pixels();
    up.free();
  } else {
    pixels = img.get_raw_pixels();
  }
  img.free();
  return ssimLuma(source.pixels, pixels, source.w, source.h);
}

function cell(m) {
  if (!m.bytes) return `FAILED (${m.error ?? "nothing fits"}) / ${m.attempts} / ${m.cpu.toFixed(0)}`;
  return `${m.quality ?? "-"} / ${m.scale} / ${m.bytes.length} / ${m.ssim.toFixed(4)} / ${m.attempts} / ${m.cpu.toFixed(0)}`;
}

function summarise(rows) {
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  const mean = (xs) => sum(xs) / xs.length;
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const over = rows.flatMap((r) =>
    [r.ours, r.pillow, r.oursJpg, r.jpeg].filter((m, _i) => m.bytes && m.bytes.length > r.budget).map(() => r),
  );
  const fitted = rows.filter((r) => r.ours.bytes && r.pillow.bytes);
  const better = fitted.filter((r) => r.ours.ssim >= r.pillow.ssim - 0.0005).length;
  console.log("\n## Summary\n");
  console.log(
    `cases: ${rows.length}; over budget (any method): ${over.length}; ours failed: ${rows.filter((r) => !r.ours.bytes).length}; pillow failed: ${rows.filter((r) => !r.pillow.bytes).length}`,
  );
  console.log("\n| method | mean SSIM | min SSIM | total encodes | total CPU ms | CPU vs pillow ladder |");
  console.log("|---|---|---|---|---|---|");
  const total = (k) => sum(rows.map((r) => r[k].cpu));
  for (const [k, label] of [
    ["ours", "ours (WebP, searched)"],
    ["pillow", "pillow-style ladder (WebP, linear)"],
    ["oursJpg", "ours (JPEG, searched)"],
    ["jpeg", "photon JPEG (linear)"],
  ]) {
    const ok = rows.filter((r) => r[k].bytes);
    console.log(
      `| ${label} | ${mean(ok.map((r) => r[k].ssim)).toFixed(4)} | ${Math.min(...ok.map((r) => r[k].ssim)).toFixed(4)} | ${sum(rows.map((r) => r[k].attempts || 0))} | ${total(k).toFixed(0)} | ${(total(k) / total("pillow")).toFixed(2)}x |`,
    );
  }
  console.log(
    `\nSSIM ours >= pillow (within 0.0005) in ${better}/${fitted.length} cases; mean SSIM difference ours - pillow: ${mean(fitted.map((r) => r.ours.ssim - r.pillow.ssim)).toFixed(4)}`,
  );
  console.log(`CPU ratio ours/pillow (goal <= 0.8): ${(total("ours") / total("pillow")).toFixed(2)}`);
  for (const [w, h] of SIZES) {
    const at = rows.filter((r) => r.size === `${w}x${h}`);
    console.log(
      `  ${w}x${h}: median CPU ms ours ${median(at.map((r) => r.ours.cpu)).toFixed(0)}, pillow ${median(at.map((r) => r.pillow.cpu)).toFixed(0)}, photon jpeg ${median(at.map((r) => r.jpeg.cpu)).toFixed(0)}; ratio of sums ${(sum(at.map((r) => r.ours.cpu)) / sum(at.map((r) => r.pillow.cpu))).toFixed(2)}`,
    );
  }
  for (const budget of BUDGETS) {
    const at = rows.filter((r) => r.budget === budget);
    console.log(
      `  budget ${budget}: ratio of CPU sums ${(sum(at.map((r) => r.ours.cpu)) / sum(at.map((r) => r.pillow.cpu))).toFixed(2)}, encodes ours ${sum(at.map((r) => r.ours.attempts || 0))} vs pillow ${sum(at.map((r) => r.pillow.attempts || 0))}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Memory: one fresh worker per (size, budget), so each WASM high-water mark is its own.

async function memory(inputs) {
  const image = inputs.images.at(-1); // the densest input (the painting, or the last synthetic one)
  console.log(`\n## Peak WASM memory per stage (MiB; fresh worker per run; image: ${image.name}, WebP target)\n`);
  console.log(
    "| size | budget | photon after decode | photon after prepare | photon peak (resizes) | libwebp peak (encodes) | photon + libwebp at end | worker JS heap + ArrayBuffers at end |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  for (const file of image.files) {
    for (const budget of BUDGETS) {
      const result = await new Promise((resolve, reject) => {
        const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { png: file.png, budget } });
        worker.once("message", resolve);
        worker.once("error", reject);
      });
      const mib = (b) => (b / 1048576).toFixed(1);
      const s = result.stages;
      console.log(
        `| ${file.w}x${file.h} | ${budget} | ${mib(s.decoded?.photon ?? 0)} | ${mib(s.prepared?.photon ?? 0)} | ${mib(Math.max(s.resized?.photon ?? 0, s.encoded?.photon ?? 0))} | ${mib(s.encoded?.webp ?? 0)} | ${mib(result.end.photon + result.end.webp)} | ${mib(result.js)} |`,
      );
    }
  }
}

async function memoryWorker() {
  const stages = {};
  const result = await encodeForWeb(
    { bytes: workerData.png, sourceMime: "image/png", format: "webp", maxBytes: workerData.budget },
    {
      onStage: ({ stage, photon, webp }) => {
        const s = (stages[stage] ??= { photon: 0, webp: 0 });
        s.photon = Math.max(s.photon, photon);
        s.webp = Math.max(s.webp, webp);
      },
    },
  );
  const mem = process.memoryUsage();
  parentPort.postMessage({ stages, end: result.wasm_memory, js: mem.heapUsed + mem.arrayBuffers });
}

// Last, so every module-level binding above is initialised.
if (!isMainThread) {
  await memoryWorker();
} else {
  await main();
}
