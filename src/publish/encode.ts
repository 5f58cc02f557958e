/**
 * The encoder behind `publish_asset` (web_optimize): fit an image under a byte budget in the format
 * the target filename asks for, with the best quality the budget allows.
 *
 * - **Format follows the target**: `.webp` → lossy WebP (libwebp through `@jsquash/webp`, the same
 *   library Pillow and sharp use), `.jpg`/`.jpeg` → JPEG (photon), `.png` → PNG (photon, lossless:
 *   only the scale varies). Never WebP bytes under a `.jpg` name.
 * - **Passthrough**: a source already in the target format and within budget is returned unchanged
 *   (animations included). Animations are never flattened to one frame: an animation that would
 *   need re-encoding is refused with a clear error.
 * - **The ladder**: scale rungs `SCALES` (outer) × quality rungs `QUALITIES` (inner); the answer is
 *   the first rung, in that order, whose encoding fits: the largest scale at which the lowest quality
 *   fits, then the highest quality that fits at that scale ("quality steps first, then scale
 *   steps", as the original server; its rungs are a subset of ours). We do not walk the ladder: we
 *   search it. Bytes fall with quality at a fixed scale and with pixels at a fixed quality, and in
 *   log space both are close to straight lines (a per-format quality curve measured on photos, and
 *   bytes ∝ pixels^0.75), so each probe is the first rung the model expects to fit, computed from the
 *   sizes measured so far; a rung between a measured miss and a measured fit whose interpolated
 *   size is more than `SKIP_MARGIN` over budget is not encoded; a probe that did not narrow the range
 *   is followed by a midpoint probe; when quality 90 at full size is so far over budget that even an
 *   optimistic curve puts the bottom rung over, the full-size bottom rung is not encoded.
 *   WebP probes use libwebp method 2 (2.4x faster than the default 4); when the budget binds, the
 *   chosen rung and the one above are re-encoded with method 5 (smaller at the same quality) and the
 *   first that fits wins (`refine`). Same bytes, format and budget → same probes → byte-identical
 *   output (libwebp and photon are deterministic single-threaded).
 * - **Memory** (a Worker isolate has 128 MB and WASM memory never shrinks): the input is refused
 *   from its header above `maxInputPixels`; photon images are freed as soon as their pixels are
 *   copied out; one rung's pixels are kept at a time; each call gets a fresh libwebp instance
 *   (its WASM memory is garbage once the call returns), instead of one module-wide instance that
 *   would keep its high-water mark for the isolate's life. photon is a single module-wide instance
 *   (that is how `@cf-wasm/photon` initialises); its memory is reported, not reset.
 *
 * WebP encoder WASM: in workerd it is imported as a module (`@jsquash/webp/codec/enc/webp_enc_simd.wasm`,
 * which wrangler and the vitest pool bundle as a `WebAssembly.Module`); Node callers (the benchmark)
 * call `setWebpEncoderModule(new WebAssembly.Module(bytes))` first. Imports carry their `.ts`
 * extension so Node 22 can run this file directly.
 *
 * Not handled: EXIF orientation is not applied when re-encoding (ComfyUI outputs carry none);
 * passthrough keeps the file, EXIF included.
 */
import { PhotonImage, SamplingFilter, initPhoton, resize } from "@cf-wasm/photon";
import webpEncoderFactory from "@jsquash/webp/codec/enc/webp_enc_simd.js";
import { defaultOptions as webpDefaults } from "@jsquash/webp/meta.js";
import { ascii, gifFrameCount, megapixels, probeDimensions, sniffImageFormat } from "../comfy/media.ts";
import { hasTranslucency, premultiply, unpremultiplied } from "../assets/pixels.ts";

export type PublishFormat = "webp" | "jpeg" | "png";

export interface EncodeRequest {
  bytes: Uint8Array;
  /** What the asset claims to be (used in messages; the bytes are sniffed). */
  sourceMime: string;
  /** The format the target filename asks for. */
  format: PublishFormat;
  /** Hard budget for the output; never exceeded. */
  maxBytes: number;
  /** Re-encode a still image even when it is already in the target format and within budget (animations still pass through as-is). */
  forceEncode?: boolean;
}

export interface EncodeResult {
  bytes: Uint8Array;
  format: PublishFormat;
  mime: string;
  /** Size of the output in pixels. */
  width: number;
  height: number;
  /** Encoder quality, or null for PNG and passthrough. */
  quality: number | null;
  /** Output width / source width (1 for passthrough). */
  scale: number;
  /** Encodes performed, including the ones that did not fit (0 for passthrough). */
  attempts: number;
  /** Wall time of the whole call (sniff, decode, resizes, encodes). */
  encode_ms: number;
  passthrough: boolean;
  /** WASM memory (bytes) at the end of the call: photon's module-wide memory and this call's libwebp instance (0 if unused). */
  wasm_memory: { photon: number; webp: number };
}

export type EncodeErrorReason = "not_an_image" | "too_large" | "cannot_fit" | "unsupported";

export class EncodeError extends Error {
  readonly reason: EncodeErrorReason;
  constructor(reason: EncodeErrorReason, message: string) {
    super(message);
    this.name = "EncodeError";
    this.reason = reason;
  }
}

/** A stage of one call with the WASM memory sizes right after it (for the benchmark). */
export interface StageReport {
  stage: "decoded" | "prepared" | "resized" | "encoded";
  photon: number;
  webp: number;
}

export interface EncodeOptions {
  /** Inputs above this many pixels are refused from their header, before decoding. Default `DEFAULT_MAX_INPUT_PIXELS`. */
  maxInputPixels?: number;
  /** "search" (default) or "linear", the reference walk over every rung in order (tests and benchmark). */
  strategy?: "search" | "linear";
  /** Called after each stage with the WASM memory sizes (benchmark). */
  onStage?: (report: StageReport) => void;
  /** libwebp effort 0..6 for the probes (default `WEBP_METHOD`). */
  webpMethod?: number;
  /** libwebp effort 0..6 for the final encode when the budget binds (default `WEBP_FINAL_METHOD`; same as webpMethod: none). */
  webpFinalMethod?: number;
}

/**
 * 2048² (4.2 MP). Measured (bench/publish.md): at 2048² photon holds 61 MB of WASM after decode and
 * up to 93 MB when a downscale is needed, libwebp 46–56 MB, so this is already the largest input a
 * 128 MB isolate can take, and only when the full size fits. Larger inputs should be re-encoded by
 * ComfyUI at the source (`/view?...&preview=webp;90`).
 */
export const DEFAULT_MAX_INPUT_PIXELS = 2048 * 2048;
/** Scale rungs (fractions of the source's sides), largest first: the original's 1 → 0.5, then further down. */
export const SCALES: readonly number[] = [1, 0.9, 0.75, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1];
/**
 * Quality rungs for lossy formats, best first: the original's 85 → 35 in steps of 5 instead of 10,
 * one rung above (spare budget buys quality) and two below (so a dense image keeps its size rather
 * than dropping a scale rung: SSIM loses far more to a downscale than to quality 25 vs 35).
 */
export const QUALITIES: readonly number[] = [90, 85, 80, 75, 70, 65, 60, 55, 50, 45, 40, 35, 30, 25];
/**
 * libwebp effort (0..6) for the ladder's probes. Method 2 is about 2.4x faster than the default 4
 * (no RD optimisation) for about 4% more bytes at the same quality.
 */
export const WEBP_METHOD = 2;
/**
 * When the budget binds (the top rung did not fit), the chosen rung is encoded once more with this
 * effort and that encoding wins if it also fits. 5 is the effort the original server asks Pillow
 * for: with 4, two of 42 benchmark cases landed one quality step below the original's ladder.
 */
export const WEBP_FINAL_METHOD = 5;

/**
 * Typical size at a quality relative to quality 85, measured on photographs at 512² and 1024² (five
 * Debian wallpapers; the spread was about ±0.04); linear in between.
 */
const QUALITY_CURVE: Record<"webp" | "jpeg", readonly (readonly [number, number])[]> = {
  webp: [
    [95, 2.6],
    [90, 1.5],
    [85, 1],
    [80, 0.79],
    [75, 0.65],
    [70, 0.61],
    [65, 0.57],
    [60, 0.54],
    [55, 0.51],
    [50, 0.48],
    [45, 0.45],
    [40, 0.41],
    [35, 0.38],
    [0, 0.2],
  ],
  jpeg: [
    [95, 1.9],
    [90, 1.3],
    [85, 1],
    [80, 0.84],
    [75, 0.72],
    [70, 0.66],
    [65, 0.61],
    [60, 0.57],
    [55, 0.53],
    [50, 0.5],
    [45, 0.47],
    [40, 0.44],
    [35, 0.41],
    [0, 0.2],
  ],
};

function curveAt(format: "webp" | "jpeg", quality: number): number {
  const table = QUALITY_CURVE[format];
  for (let i = 1; i < table.length; i++) {
    const [q1, v1] = table[i - 1]!;
    const [q0, v0] = table[i]!;
    if (quality >= q0) return v0 + ((v1 - v0) * (Math.min(quality, q1) - q0)) / (q1 - q0);
  }
  return table.at(-1)![1];
}
/** bytes ∝ pixels^PIXEL_EXPONENT at a fixed quality (measured 0.63–1.0, photos ~0.75). */
const PIXEL_EXPONENT = 0.75;
/**
 * The bottom rung's size relative to the curve's prediction was never below 0.84 (q35/q85: 0.32 for
 * a typical 0.38); when the top rung at full size is so far over budget that even FLOOR_SAFETY times
 * the predicted bottom rung misses, the full size cannot fit and its bottom rung is not encoded.
 */
const FLOOR_SAFETY = 0.6;
/** A bracketed rung predicted this much over budget is taken as a miss without encoding it. */
const SKIP_MARGIN = 0.06;
/** Scale rungs stop before the longest side falls under this. */
const MIN_SIDE = 16;
/** Downscales to less than this fraction use Triangle (fast, clean at ≥ 2×); others Lanczos3. */
const LANCZOS_MIN_SCALE = 0.5;

const MIME: Record<PublishFormat, string> = { webp: "image/webp", jpeg: "image/jpeg", png: "image/png" };
const NAME: Record<SourceFormat, string> = { webp: "WebP", jpeg: "JPEG", png: "PNG", gif: "GIF" };

// ---------------------------------------------------------------------------------------------
// libwebp (jsquash) instances

interface WebpEncoder {
  encode(data: BufferSource, width: number, height: number, options: typeof webpDefaults): Uint8Array | null;
}

let webpModule: Promise<WebAssembly.Module> | undefined;

/** Supplies the SIMD libwebp encoder module (Node: `new WebAssembly.Module(readFileSync(".../webp_enc_simd.wasm"))`). */
export function setWebpEncoderModule(module: WebAssembly.Module): void {
  webpModule = Promise.resolve(module);
}

async function loadWebpModule(): Promise<WebAssembly.Module> {
  // In a Worker build (wrangler, vitest pool) a .wasm import is a compiled WebAssembly.Module.
  webpModule ??= import("@jsquash/webp/codec/enc/webp_enc_simd.wasm").then(
    (m: { default: WebAssembly.Module }) => m.default,
  );
  return webpModule;
}

/** A fresh libwebp instance with its own WASM memory, garbage once the caller drops it. */
async function newWebpEncoder(): Promise<{ encoder: WebpEncoder; memory: () => number }> {
  const module = await loadWebpModule();
  let memory: WebAssembly.Memory | undefined;
  const factory = webpEncoderFactory as unknown as (options: object) => Promise<WebpEncoder>;
  const encoder = await factory({
    noInitialRun: true,
    instantiateWasm: (imports: WebAssembly.Imports, done: (instance: WebAssembly.Instance) => void) => {
      const instance = new WebAssembly.Instance(module, imports);
      memory = Object.values(instance.exports).find((e): e is WebAssembly.Memory => e instanceof WebAssembly.Memory);
      done(instance);
      return instance.exports;
    },
  });
  return { encoder, memory: () => memory?.buffer.byteLength ?? 0 };
}

async function photonMemory(): Promise<() => number> {
  try {
    const exports = (await initPhoton.ensure()) as { memory?: WebAssembly.Memory };
    return () => exports.memory?.buffer.byteLength ?? 0;
  } catch {
    return () => 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Entry point

export async function encodeForWeb(req: EncodeRequest, options: EncodeOptions = {}): Promise<EncodeResult> {
  const started = performance.now();
  const { bytes, format, maxBytes } = req;
  const maxInputPixels = options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  if (!Number.isFinite(maxBytes) || maxBytes < 1)
    throw new RangeError(`maxBytes must be a positive number, got ${maxBytes}`);
  if (!(format in MIME))
    throw new EncodeError("unsupported", `Unsupported output format "${format}"; use webp, jpeg or png.`);

  const header = readHeader(bytes, req.sourceMime);
  const kind = `${header.animated ? "animated " : ""}${NAME[header.format]}`;
  const photonBytes = await photonMemory();
  const done = (r: Omit<EncodeResult, "encode_ms" | "mime" | "format" | "wasm_memory">, webp = 0): EncodeResult => ({
    ...r,
    format,
    mime: MIME[format],
    encode_ms: Math.round((performance.now() - started) * 10) / 10,
    wasm_memory: { photon: photonBytes(), webp },
  });

  // Passthrough: already in the target format and within budget (animations too, even when forced).
  if (header.format === format && bytes.length <= maxBytes && (!req.forceEncode || header.animated)) {
    return done({
      bytes,
      width: header.width,
      height: header.height,
      quality: null,
      scale: 1,
      attempts: 0,
      passthrough: true,
    });
  }
  if (header.animated) {
    if (header.format !== format) {
      throw new EncodeError(
        "unsupported",
        `The source is an ${kind} (${header.width}x${header.height}); it can only be published as-is, in its own format, and ${format} was asked. ` +
          `Re-encoding would keep only its first frame.`,
      );
    }
    throw new EncodeError(
      "cannot_fit",
      `The source is an ${kind} of ${bytes.length} bytes, over the ${maxBytes}-byte budget. Animations are published only as-is ` +
        `(re-encoding would keep only the first frame): raise max_bytes to at least ${bytes.length} or publish a still image.`,
    );
  }
  if (header.width * header.height > maxInputPixels) {
    throw new EncodeError(
      "too_large",
      `The ${kind} image is ${header.width}x${header.height} (${megapixels(header.width * header.height)} MP), above the ` +
        `${megapixels(maxInputPixels)} MP limit for web optimisation in a Worker. Publish a smaller image, or let ComfyUI ` +
        `re-encode it at the source (/view?...&preview=webp;90) first.`,
    );
  }

  const report = (stage: StageReport["stage"], webp = 0) => options.onStage?.({ stage, photon: photonBytes(), webp });

  // Decode, copy the pixels out, free the decoder's image.
  const source = decode(bytes, kind);
  report("decoded");
  if (source.width * source.height > maxInputPixels) {
    throw new EncodeError(
      "too_large",
      `The decoded ${kind} image is ${source.width}x${source.height}, above the ${megapixels(maxInputPixels)} MP limit.`,
    );
  }
  const translucent = hasTranslucency(source.pixels);
  if (format === "jpeg" && translucent) flattenOnWhite(source.pixels);
  const premultiplied = format !== "jpeg" && translucent;
  if (premultiplied) premultiply(source.pixels);
  report("prepared");

  const webp = format === "webp" ? await newWebpEncoder() : undefined;
  const ladder = new Ladder(
    source,
    format,
    maxBytes,
    premultiplied,
    webp?.encoder,
    (stage) => report(stage, webp?.memory() ?? 0),
    kind,
    options.webpMethod ?? WEBP_METHOD,
    QUALITIES,
  );
  try {
    const found = ladder.refine(
      options.strategy === "linear" ? ladder.linear() : ladder.search(),
      options.webpFinalMethod ?? WEBP_FINAL_METHOD,
    );
    if (!found) {
      const s = ladder.smallest!;
      throw new EncodeError(
        "cannot_fit",
        `The image cannot be compressed below ${maxBytes} bytes as ${format}. Smallest achieved: ${s.bytes} bytes ` +
          `(${s.width}x${s.height}${s.quality === null ? "" : `, quality ${s.quality}`}). Original: ${bytes.length} bytes, ${source.width}x${source.height}.`,
      );
    }
    if (found.data.length > maxBytes)
      throw new Error(`publish budget check failed: ${found.data.length} > ${maxBytes}`);
    return done(
      {
        bytes: found.data,
        width: found.width,
        height: found.height,
        quality: found.quality,
        scale: SCALES[found.scaleIndex]!,
        attempts: ladder.attempts,
        passthrough: false,
      },
      webp?.memory() ?? 0,
    );
  } finally {
    ladder.release();
  }
}

// ---------------------------------------------------------------------------------------------
// The ladder

interface Source {
  pixels: Uint8Array;
  width: number;
  height: number;
}

interface Encoded {
  data: Uint8Array;
  width: number;
  height: number;
  quality: number | null;
  scaleIndex: number;
}

/** One axis of the ladder as `firstFit` sees it: rung i has model coordinate x[i]. */
interface Axis {
  x: readonly number[];
  /** Measured log-sizes by rung. */
  known: Map<number, number>;
  /** Slope of log(bytes) against x when fewer than two rungs are measured. */
  slope: number;
  /** An estimate (rung, log-size) used as anchor until a rung below is measured. */
  prior?: { index: number; y: number };
  /** Encodes rung i once (or reuses its size) and says whether it fits. */
  fits(i: number): boolean;
}

class Ladder {
  attempts = 0;
  smallest: { bytes: number; width: number; height: number; quality: number | null } | undefined;
  private readonly qualities: readonly (number | null)[];
  private readonly scales: { width: number; height: number }[];
  private readonly sizes = new Map<string, number>();
  private readonly fitting = new Map<string, Encoded>();
  /** The current rung's pixels (and, for photon formats, its PhotonImage). */
  private current: { index: number; pixels: Uint8Array; image?: PhotonImage } | undefined;
  private readonly logBudget: number;

  private readonly source: Source;
  private readonly format: PublishFormat;
  private readonly maxBytes: number;
  private readonly premultiplied: boolean;
  private readonly webp: WebpEncoder | undefined;
  private readonly report: (stage: StageReport["stage"]) => void;
  private readonly kind: string;
  private readonly webpMethod: number;

  constructor(
    source: Source,
    format: PublishFormat,
    maxBytes: number,
    premultiplied: boolean,
    webp: WebpEncoder | undefined,
    report: (stage: StageReport["stage"]) => void,
    kind: string,
    webpMethod: number,
    qualities: readonly number[],
  ) {
    this.webpMethod = webpMethod;
    this.source = source;
    this.format = format;
    this.maxBytes = maxBytes;
    this.premultiplied = premultiplied;
    this.webp = webp;
    this.report = report;
    this.kind = kind;
    this.qualities = format === "png" ? [null] : qualities;
    this.scales = [];
    for (const s of SCALES) {
      const width = Math.max(1, Math.floor(source.width * s));
      const height = Math.max(1, Math.floor(source.height * s));
      if (s < 1 && Math.max(width, height) < MIN_SIDE) break;
      this.scales.push({ width, height });
    }
    this.logBudget = Math.log(maxBytes);
  }

  /**
   * WebP when the budget binds: the final effort is smaller at the same quality, so the rung one
   * quality step up is tried with it first, then the chosen rung; the first that fits wins, else the
   * probe's encoding stands. At most two more encodes, only when the top rung did not fit.
   */
  refine(found: Encoded | undefined, finalMethod: number): Encoded | undefined {
    if (!found || this.format !== "webp" || this.attempts < 2 || finalMethod === this.webpMethod) return found;
    const index = this.qualities.indexOf(found.quality);
    for (const q of index > 0 ? [index - 1, index] : [index]) {
      const quality = this.qualities[q]!;
      const data = this.encode(found.scaleIndex, quality, finalMethod);
      this.attempts++;
      this.report("encoded");
      if (data.length <= this.maxBytes) return { ...found, data, quality };
    }
    return found;
  }

  /** The reference: every rung in order, first fit wins. */
  linear(): Encoded | undefined {
    for (let s = 0; s < this.scales.length; s++) {
      for (let q = 0; q < this.qualities.length; q++) if (this.fits(s, q)) return this.fitting.get(`${s}:${q}`);
    }
    return undefined;
  }

  search(): Encoded | undefined {
    const floor = this.qualities.length - 1;
    const format = this.format;
    const curve =
      format === "png" ? [1] : this.qualities.map((q) => curveAt(format, q!) / curveAt(format, this.qualities[0]!));
    if (this.fits(0, 0)) return this.fitting.get("0:0");
    const top = this.sizes.get("0:0")!;

    // 1. Full size, lower qualities: unless even the most optimistic curve says the bottom rung misses.
    if (floor > 0 && top * curve[floor]! * FLOOR_SAFETY <= this.maxBytes) {
      const q = this.firstFit(this.qualityAxis(0, curve), 0, floor + 1);
      if (q <= floor) return this.fitting.get(`0:${q}`);
    }

    // 2. The largest scale whose bottom rung fits (scale 0 is known not to fit).
    const bottomAtFull = this.sizes.get(`0:${floor}`);
    const atFloor = new Map<number, number>();
    if (bottomAtFull !== undefined) atFloor.set(0, Math.log(bottomAtFull));
    const scaleAxis: Axis = {
      x: this.scales.map((s) => Math.log(s.width * s.height)),
      known: atFloor,
      slope: PIXEL_EXPONENT,
      prior: bottomAtFull === undefined ? { index: 0, y: Math.log(top * curve[floor]!) } : undefined,
      fits: (s) => {
        const fits = this.fits(s, floor);
        atFloor.set(s, Math.log(this.sizes.get(`${s}:${floor}`)!));
        return fits;
      },
    };
    const scale = this.firstFit(scaleAxis, 0, this.scales.length);
    if (scale >= this.scales.length) return undefined;
    if (floor === 0) return this.fitting.get(`${scale}:0`);

    // 3. The best quality at that scale (its bottom rung fits).
    const q = this.firstFit(this.qualityAxis(scale, curve), -1, floor);
    return this.fitting.get(`${scale}:${q}`);
  }

  private qualityAxis(scale: number, curve: readonly number[]): Axis {
    const known = new Map<number, number>();
    for (let q = 0; q < this.qualities.length; q++) {
      const size = this.sizes.get(`${scale}:${q}`);
      if (size !== undefined) known.set(q, Math.log(size));
    }
    return {
      x: curve.map(Math.log),
      known,
      slope: 1,
      fits: (q) => {
        const fits = this.fits(scale, q);
        known.set(q, Math.log(this.sizes.get(`${scale}:${q}`)!));
        return fits;
      },
    };
  }

  /**
   * The first rung in (lo, hi) that fits, given that rung lo does not (-1: none known) and rung hi
   * does (n: none known); hi when none does. Assumes fitting is monotonic along the axis.
   */
  private firstFit(axis: Axis, lo: number, hi: number): number {
    let midpointNext = false;
    while (hi - lo > 1) {
      // A rung next to the known miss, bracketed by measurements and predicted well over budget, is a miss.
      if (lo >= 0 && axis.known.has(lo) && axis.known.has(hi)) {
        const predicted = this.predict(axis, lo + 1, lo, hi);
        if (predicted > this.logBudget + Math.log1p(SKIP_MARGIN)) {
          lo++;
          continue;
        }
      }
      const open = hi - lo - 1;
      const probe: number = midpointNext ? Math.floor((lo + hi) / 2) : this.guess(axis, lo, hi);
      const fits = axis.fits(probe);
      const left: number = fits ? probe - lo - 1 : hi - probe - 1;
      midpointNext = !midpointNext && left > open / 2 && open > 2;
      if (fits) hi = probe;
      else lo = probe;
    }
    return hi;
  }

  /** The first rung in (lo, hi) that the model expects to fit (hi - 1 if none). */
  private guess(axis: Axis, lo: number, hi: number): number {
    for (let i = lo + 1; i < hi; i++) if (this.predict(axis, i, lo, hi) <= this.logBudget) return i;
    return hi - 1;
  }

  /** Predicted log-size of rung i from the nearest measurements at or below lo and at or above hi. */
  private predict(axis: Axis, i: number, lo: number, hi: number): number {
    let below: { index: number; y: number } | undefined;
    let above: { index: number; y: number } | undefined;
    for (const [index, y] of axis.known) {
      if (index <= lo && (!below || index > below.index)) below = { index, y };
      if (index >= hi && (!above || index < above.index)) above = { index, y };
    }
    below ??= axis.prior && axis.prior.index <= lo ? axis.prior : undefined;
    const anchor = below ?? above;
    if (!anchor) return -Infinity;
    let slope = axis.slope;
    if (below && above && axis.x[above.index] !== axis.x[below.index]) {
      const fitted = (above.y - below.y) / (axis.x[above.index]! - axis.x[below.index]!);
      if (fitted > 0 && Number.isFinite(fitted)) slope = fitted;
    }
    return anchor.y + slope * (axis.x[i]! - axis.x[anchor.index]!);
  }

  /** Encodes rung (scale, quality) once and says whether it fits. */
  private fits(scaleIndex: number, qualityIndex: number): boolean {
    const key = `${scaleIndex}:${qualityIndex}`;
    const known = this.sizes.get(key);
    if (known !== undefined) return known <= this.maxBytes;
    const { width, height } = this.scales[scaleIndex]!;
    const quality = this.qualities[qualityIndex]!;
    const data = this.encode(scaleIndex, quality);
    this.attempts++;
    this.report("encoded");
    this.sizes.set(key, data.length);
    if (!this.smallest || data.length < this.smallest.bytes)
      this.smallest = { bytes: data.length, width, height, quality };
    if (data.length > this.maxBytes) return false;
    this.fitting.set(key, { data, width, height, quality, scaleIndex });
    return true;
  }

  private encode(scaleIndex: number, quality: number | null, webpMethod = this.webpMethod): Uint8Array {
    const rung = this.rung(scaleIndex);
    const { width, height } = this.scales[scaleIndex]!;
    if (this.format === "webp") {
      const out = this.webp!.encode(rung.pixels, width, height, {
        ...webpDefaults,
        quality: quality!,
        method: webpMethod,
      });
      if (!out) throw new Error(`libwebp failed to encode ${width}x${height} at quality ${quality}`);
      return out;
    }
    rung.image ??= photon(
      `preparing the ${width}x${height} image`,
      this.kind,
      () => new PhotonImage(rung.pixels, width, height),
    );
    const image = rung.image;
    return this.format === "jpeg"
      ? photon("encoding JPEG", this.kind, () => image.get_bytes_jpeg(quality!))
      : photon("encoding PNG", this.kind, () => image.get_bytes());
  }

  /** The pixels of a scale rung (straight alpha), resized from the source; only one rung is kept. */
  private rung(index: number): { index: number; pixels: Uint8Array; image?: PhotonImage } {
    if (this.current?.index === index) return this.current;
    this.release();
    const { width, height } = this.scales[index]!;
    let pixels: Uint8Array;
    if (index === 0) {
      pixels = this.premultiplied ? unpremultiplied(this.source.pixels) : this.source.pixels;
    } else {
      const filter = SCALES[index]! >= LANCZOS_MIN_SCALE ? SamplingFilter.Lanczos3 : SamplingFilter.Triangle;
      pixels = resizePixels(this.source, width, height, filter, this.kind);
      if (this.premultiplied) pixels = unpremultiplied(pixels);
      this.report("resized");
    }
    this.current = { index, pixels };
    return this.current;
  }

  release(): void {
    if (this.current?.image) freeQuietly(this.current.image);
    this.current = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// photon plumbing

function decode(bytes: Uint8Array, kind: string): Source {
  const image = photon(`decoding the ${kind}`, kind, () => PhotonImage.new_from_byteslice(bytes));
  try {
    return photon(`reading the decoded ${kind}`, kind, () => ({
      width: image.get_width(),
      height: image.get_height(),
      pixels: image.get_raw_pixels(),
    }));
  } finally {
    freeQuietly(image);
  }
}

function resizePixels(source: Source, width: number, height: number, filter: SamplingFilter, kind: string): Uint8Array {
  const from = photon("copying pixels", kind, () => new PhotonImage(source.pixels, source.width, source.height));
  let to: PhotonImage | undefined;
  try {
    to = photon(`resizing to ${width}x${height}`, kind, () => resize(from, width, height, filter));
    freeQuietly(from);
    const image = to;
    return photon("reading resized pixels", kind, () => image.get_raw_pixels());
  } finally {
    freeQuietly(from);
    if (to) freeQuietly(to);
  }
}

const freed = new WeakSet<PhotonImage>();
function freeQuietly(image: PhotonImage): void {
  if (freed.has(image)) return;
  freed.add(image);
  try {
    image.free();
  } catch {
    // A panicked wasm call can leave an image unfreeable; nothing more to do.
  }
}

/** Runs one photon call; a wasm panic (`RuntimeError: unreachable`) or any error becomes not_an_image. */
function photon<T>(step: string, kind: string, call: () => T): T {
  try {
    return call();
  } catch (error) {
    const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new EncodeError("not_an_image", `The ${kind} image could not be processed (${step} failed: ${detail}).`);
  }
}

// ---------------------------------------------------------------------------------------------
// Pixels (RGBA, 4 bytes per pixel)

/** Straight-alpha RGBA composited on white, in place (JPEG has no alpha). */
function flattenOnWhite(pixels: Uint8Array): void {
  for (let i = 0; i < pixels.length; i += 4) {
    const a = pixels[i + 3]!;
    if (a === 255) continue;
    const white = 255 * (255 - a);
    pixels[i] = Math.round((pixels[i]! * a + white) / 255);
    pixels[i + 1] = Math.round((pixels[i + 1]! * a + white) / 255);
    pixels[i + 2] = Math.round((pixels[i + 2]! * a + white) / 255);
    pixels[i + 3] = 255;
  }
}

// ---------------------------------------------------------------------------------------------
// Header: format, size and animation, without decoding

type SourceFormat = "png" | "jpeg" | "webp" | "gif";

interface Header {
  format: SourceFormat;
  width: number;
  height: number;
  animated: boolean;
}

function readHeader(bytes: Uint8Array, sourceMime: string): Header {
  const format = sniffImageFormat(bytes);
  if (!format) {
    throw new EncodeError(
      "not_an_image",
      `The asset (${sourceMime || "unknown type"}, ${bytes.length} bytes) is not a PNG, JPEG, WebP or GIF image.`,
    );
  }
  const dims = probeDimensions(bytes);
  if (!dims || dims.width < 1 || dims.height < 1) {
    throw new EncodeError(
      "not_an_image",
      `The asset starts like a ${NAME[format]} image but its header gives no valid size (truncated or corrupt).`,
    );
  }
  let animated = false;
  try {
    animated =
      format === "png"
        ? pngIsAnimated(bytes)
        : format === "webp"
          ? webpIsAnimated(bytes)
          : format === "gif"
            ? gifFrameCount(bytes) > 1
            : false;
  } catch {
    // A damaged header is left to the decoder to judge.
  }
  return { format, ...dims, animated };
}

/** APNG: an acTL chunk before the first IDAT. */
function pngIsAnimated(b: Uint8Array): boolean {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let offset = 8; offset + 8 <= b.length; ) {
    const type = ascii(b, offset + 4, offset + 8);
    if (type === "acTL") return true;
    if (type === "IDAT" || type === "IEND") return false;
    offset += 12 + view.getUint32(offset);
  }
  return false;
}

/** VP8X with the animation flag. */
function webpIsAnimated(b: Uint8Array): boolean {
  return ascii(b, 12, 16) === "VP8X" && b.length > 20 && (b[20]! & 0x02) !== 0;
}
