/**
 * The encoder behind `view_image`: decode a PNG, JPEG, WebP or GIF with photon (wasm), scale it so
 * its longest side is at most `maxDim` (never up), and encode it so the base64 text fits
 * `maxB64Chars`. The budget is a hard limit: every candidate is really encoded and measured, and
 * only a measured fit is returned.
 *
 * The ladder (see `JPEG_QUALITIES` and `scaleLadder`) is the original server's idea made finer:
 * JPEG qualities 85 → 35 at the requested size, then the same qualities at ×0.75 steps of the size,
 * down to a longest side of 32 px. Its answer is "the first rung that fits, walking the ladder in
 * order". Instead of walking it, we search it: byte size falls with quality at a fixed size and
 * with size at quality 35, so the first fitting size is found by a model-guided bisection over the
 * sizes at quality 35, then the first fitting quality at that size by the same search. Each guess
 * comes from the sizes measured so far (log(bytes - JPEG header) is close to linear in
 * log(pixels) and in the log of a typical quality curve); when the top-size prediction says the
 * floor quality fits there, the qualities at the top size are searched first. A run of three
 * guesses that each leave more than half of the remaining rungs is followed by a midpoint probe,
 * so a bad model cannot degrade into a long walk. Same bytes and options → same probes →
 * byte-identical output. Over 891 cases (27 inputs × 3 max_dim × 11 budgets, Node) it made 3.0
 * encodes on average (max 9) where the linear walk made 12.9 (max 72), with the same answer in
 * every case.
 *
 * Images with (partial) transparency are resized premultiplied (no dark fringes), kept as PNG when
 * that fits at the requested size, and otherwise flattened on white for the JPEG ladder. EXIF
 * orientation (JPEG APP1, PNG eXIf, WebP EXIF) is applied. Animated images show their first frame
 * (photon decodes the first frame of animated WebP, APNG and GIF).
 *
 * Imports carry their `.ts` extension so Node 22 can run this file directly (bench/view-image.mjs).
 */
import { PhotonImage, SamplingFilter, resize } from "@cf-wasm/photon";
import { ascii, gifFrameCount, megapixels, probeDimensions, sniffImageFormat } from "../comfy/media.ts";
import { hasTranslucency, premultiply, unpremultiplied } from "./pixels.ts";

export interface ThumbnailOptions {
  /** Longest side of the result in pixels; capped at `MAX_THUMBNAIL_DIM`. The image is never upscaled. */
  maxDim: number;
  /** Budget for `base64.length` (4·ceil(bytes/3)); never exceeded. */
  maxB64Chars: number;
  /**
   * How to find the first fitting rung: "search" (default) or "linear", the reference walk over
   * every rung in order. Both give the same answer when sizes are monotonic; "linear" is for tests
   * and the benchmark.
   */
  strategy?: "search" | "linear";
}

export interface Thumbnail {
  base64: string;
  /** JPEG, or PNG for transparent images that fit. "image/webp" is never produced (photon's WebP encoder is lossless only). */
  mimeType: "image/jpeg" | "image/png" | "image/webp";
  /** Size of the thumbnail as displayed (after EXIF orientation). */
  width: number;
  height: number;
  /** Encoded bytes (`base64` decodes to this many). */
  bytes: number;
  /** JPEG quality, or null for PNG. */
  quality: number | null;
  /** Encodes performed (PNG and JPEG), including the ones that did not fit. */
  attempts: number;
  /** Size of the source as displayed (after EXIF orientation; for animations, the canvas). */
  sourceWidth: number;
  sourceHeight: number;
}

export type ThumbnailErrorReason = "not_an_image" | "too_large" | "cannot_fit";

export class ThumbnailError extends Error {
  readonly reason: ThumbnailErrorReason;
  constructor(reason: ThumbnailErrorReason, message: string) {
    super(message);
    this.name = "ThumbnailError";
    this.reason = reason;
  }
}

/** Sources above this many pixels are refused from their header, before decoding. */
export const MAX_SOURCE_PIXELS = 17_000_000;
/** `maxDim` is capped here. */
export const MAX_THUMBNAIL_DIM = 2048;
/** The scale ladder stops at this longest side. */
export const MIN_THUMBNAIL_DIM = 32;
/** Quality rungs, best first; the last one is the floor. */
export const JPEG_QUALITIES: readonly number[] = [85, 75, 65, 55, 45, 35];
/** Each scale rung is this fraction of the previous one (longest side). */
export const SCALE_STEP = 0.75;

/** Bytes photon's JPEG encoder spends before any pixel (headers, quantisation and Huffman tables). */
const JPEG_OVERHEAD = 620;
/** Typical JPEG size at each quality relative to quality 85 (measured on photo-like images). */
const QUALITY_CURVE: readonly number[] = [1, 0.68, 0.53, 0.45, 0.38, 0.31];
/**
 * Downscales by more than this factor use Triangle, the others Lanczos3. Measured with photon
 * (Node, 2 cores), resizing to 512 px: Lanczos3 57 ms from 1024 px, 215 ms from 2048, 653 ms from
 * 4096; Triangle 35 / 70 / 276 ms. Lanczos3 keeps more detail (from 1024 px its q85 JPEG is 24%
 * larger than Triangle's, from 4096 px 5%), so it is worth its cost on small factors; beyond 2×
 * Triangle's tent already spans more than 4 source pixels and anti-aliases cleanly, while
 * Lanczos3's cost grows with the source (+380 ms from 4096 px).
 */
const LANCZOS_MAX_RATIO = 2;

type Format = "png" | "jpeg" | "webp" | "gif";

interface Header {
  format: Format;
  width: number;
  height: number;
  /** EXIF orientation 1..8 (1 = as stored). */
  orientation: number;
  /** False only when the format cannot carry transparency (JPEG, lossy WebP without ALPH). */
  mayHaveAlpha: boolean;
  animated: boolean;
}

interface Size {
  width: number;
  height: number;
}

export function makeThumbnail(bytes: Uint8Array, options: ThumbnailOptions): Thumbnail {
  const { maxDim, maxB64Chars, strategy = "search" } = options;
  if (!Number.isFinite(maxDim) || maxDim < 1) throw new RangeError(`maxDim must be a positive number, got ${maxDim}`);
  if (!Number.isFinite(maxB64Chars) || maxB64Chars < 1)
    throw new RangeError(`maxB64Chars must be a positive number, got ${maxB64Chars}`);
  const dimCap = Math.min(Math.floor(maxDim), MAX_THUMBNAIL_DIM);
  /** The largest n with 4·ceil(n/3) <= maxB64Chars. */
  const maxBytes = Math.floor(maxB64Chars / 4) * 3;

  const header = readHeader(bytes);
  const kind = describeFormat(header);
  if (header.width * header.height > MAX_SOURCE_PIXELS) {
    throw new ThumbnailError(
      "too_large",
      `The ${kind} is ${header.width}x${header.height} (${megapixels(header.width * header.height)} MP), above the ${megapixels(MAX_SOURCE_PIXELS)} MP limit for thumbnails.`,
    );
  }

  const images = new Images();
  try {
    const source = images.own(photon(`decoding the ${kind}`, header, () => PhotonImage.new_from_byteslice(bytes)));
    const stored = photon("reading the decoded size", header, () => ({
      width: source.get_width(),
      height: source.get_height(),
    }));
    if (stored.width < 1 || stored.height < 1 || stored.width * stored.height > MAX_SOURCE_PIXELS) {
      throw new ThumbnailError(
        "too_large",
        `The decoded ${kind} is ${stored.width}x${stored.height}, outside what thumbnails accept.`,
      );
    }
    const display: Size = header.orientation >= 5 ? { width: stored.height, height: stored.width } : stored;
    const scales = scaleLadder(display, Math.min(Math.max(stored.width, stored.height), dimCap));
    const { flat, withAlpha } = topRung(images, header, source, stored, scales[0]!);

    const encoder = new Encoder(images, header, flat, scales, maxBytes);
    const result =
      (withAlpha && encoder.png(withAlpha)) || (strategy === "linear" ? encoder.linear() : encoder.search());
    if (!result) {
      const smallest = encoder.smallest!;
      throw new ThumbnailError(
        "cannot_fit",
        `The image cannot fit in ${maxB64Chars} base64 characters: the smallest encoding tried, ` +
          `JPEG quality ${smallest.quality} at ${smallest.width}x${smallest.height}, needs ${base64Length(smallest.bytes)}.`,
      );
    }
    const base64 = toBase64(result.data);
    if (base64.length > maxB64Chars)
      throw new Error(`thumbnail budget check failed: ${base64.length} > ${maxB64Chars}`);
    return {
      base64,
      mimeType: result.quality === null ? "image/png" : "image/jpeg",
      width: result.width,
      height: result.height,
      bytes: result.data.length,
      quality: result.quality,
      attempts: encoder.attempts,
      sourceWidth: display.width,
      sourceHeight: display.height,
    };
  } finally {
    images.freeAll();
  }
}

/**
 * The thumbnail at the top rung (`top`, as displayed), from the decoded source (consumed: freed or
 * reused). `flat` is opaque (flattened on white if needed); `withAlpha` is the straight-alpha
 * version, present only when some pixel is translucent.
 */
function topRung(
  images: Images,
  header: Header,
  source: PhotonImage,
  stored: Size,
  top: Size,
): { flat: PhotonImage; withAlpha?: PhotonImage } {
  const target: Size = header.orientation >= 5 ? { width: top.height, height: top.width } : top;
  const filter = filterFor(Math.max(stored.width, stored.height), Math.max(target.width, target.height));
  const scale = (image: PhotonImage) =>
    sameSize(target, stored)
      ? image
      : images.own(photon("resizing", header, () => resize(image, target.width, target.height, filter)));
  const toImage = (pixels: Uint8Array) =>
    images.own(photon("copying pixels", header, () => new PhotonImage(pixels, top.width, top.height)));

  let base = scale(source);
  let pixels: Uint8Array | undefined;
  if (header.mayHaveAlpha) {
    pixels = photon("reading pixels", header, () => base.get_raw_pixels());
    if (hasTranslucency(pixels)) {
      if (base !== source) {
        // Resize again, premultiplied, so transparent pixels' colours do not bleed into the edges.
        images.free(base);
        const sourcePixels = photon("reading pixels", header, () => source.get_raw_pixels());
        images.free(source);
        premultiply(sourcePixels);
        const premultiplied = images.own(
          photon("copying pixels", header, () => new PhotonImage(sourcePixels, stored.width, stored.height)),
        );
        base = scale(premultiplied);
        images.free(premultiplied);
        pixels = photon("reading pixels", header, () => base.get_raw_pixels());
      } else {
        premultiply(pixels);
      }
      images.free(base);
      images.free(source);
      const oriented = orient(pixels, target, header.orientation);
      return { flat: toImage(onWhite(oriented)), withAlpha: toImage(unpremultiplied(oriented)) };
    }
  }
  if (base !== source) images.free(source);
  if (header.orientation === 1) return { flat: base };
  const raw = pixels ?? photon("reading pixels", header, () => base.get_raw_pixels());
  images.free(base);
  return { flat: toImage(orient(raw, target, header.orientation)) };
}

/** Length of the base64 text for `bytes` bytes. */
export function base64Length(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}

/**
 * The sizes the ladder visits, as displayed: the top rung (longest side `top`), then ×0.75 steps
 * (rounded), then exactly `MIN_THUMBNAIL_DIM`; a top rung at or below the minimum is the only rung.
 */
export function scaleLadder(display: Size, top: number): Size[] {
  const long = Math.max(display.width, display.height);
  const at = (side: number): Size => ({
    width: display.width >= display.height ? side : Math.max(1, Math.round((display.width * side) / long)),
    height: display.height > display.width ? side : Math.max(1, Math.round((display.height * side) / long)),
  });
  const sides = [top];
  for (let step = 1; sides[sides.length - 1]! > MIN_THUMBNAIL_DIM; step++) {
    sides.push(Math.max(MIN_THUMBNAIL_DIM, Math.round(top * SCALE_STEP ** step)));
  }
  return sides.map(at);
}

// ---------------------------------------------------------------------------------------------
// The ladder and its search

interface Encoded {
  data: Uint8Array;
  width: number;
  height: number;
  quality: number | null;
}

/** An axis of the ladder: rungs 0..n-1 whose sizes fall with the index. */
interface Axis {
  n: number;
  /** Model coordinate per rung: log(bytes - JPEG header) is taken as linear in it. */
  x: readonly number[];
  /** Measured sizes on this axis, by rung. */
  known: Map<number, number>;
  /** A predicted size standing in for a measurement when nothing below the bracket is measured. */
  prior?: { index: number; bytes: number };
  fits(index: number): boolean;
}

class Encoder {
  attempts = 0;
  /** The smallest JPEG made, for the cannot_fit message. */
  smallest: { bytes: number; quality: number; width: number; height: number } | undefined;
  private readonly images: Images;
  private readonly header: Header;
  private readonly flat: PhotonImage;
  private readonly scales: readonly Size[];
  private readonly maxBytes: number;
  /** Encoded size per rung ("scale:quality"), and the encodings that fit. */
  private readonly sizes = new Map<string, number>();
  private readonly fitting = new Map<string, Encoded>();
  private scaled: { index: number; image: PhotonImage } | undefined;

  constructor(images: Images, header: Header, flat: PhotonImage, scales: readonly Size[], maxBytes: number) {
    this.images = images;
    this.header = header;
    this.flat = flat;
    this.scales = scales;
    this.maxBytes = maxBytes;
  }

  /** PNG at the top rung, if it fits. */
  png(image: PhotonImage): Encoded | undefined {
    this.attempts++;
    const data = photon("encoding PNG", this.header, () => image.get_bytes());
    const top = this.scales[0]!;
    return data.length <= this.maxBytes ? { data, width: top.width, height: top.height, quality: null } : undefined;
  }

  /** The reference: every rung in order. */
  linear(): Encoded | undefined {
    for (let s = 0; s < this.scales.length; s++) {
      for (let q = 0; q < JPEG_QUALITIES.length; q++) {
        if (this.fits(s, q)) return this.fitting.get(`${s}:${q}`);
      }
    }
    return undefined;
  }

  search(): Encoded | undefined {
    const floor = JPEG_QUALITIES.length - 1;
    if (this.fits(0, 0)) return this.fitting.get("0:0");
    const topBytes = this.sizes.get("0:0")!;
    const qualityAxis = (scale: number): Axis => {
      const known = new Map<number, number>();
      for (let q = 0; q <= floor; q++) {
        const size = this.sizes.get(`${scale}:${q}`);
        if (size !== undefined) known.set(q, size);
      }
      return {
        n: JPEG_QUALITIES.length,
        x: QUALITY_CURVE.map(Math.log),
        known,
        fits: (q) => {
          const fits = this.fits(scale, q);
          known.set(q, this.sizes.get(`${scale}:${q}`)!);
          return fits;
        },
      };
    };

    // Nothing is measured at the floor quality yet: predict it from the top rung's size.
    const floorGuess = JPEG_OVERHEAD + (topBytes - JPEG_OVERHEAD) * (QUALITY_CURVE[floor]! / QUALITY_CURVE[0]!);
    let lowestFailing = -1;
    if (floorGuess <= this.maxBytes) {
      // Expected to fit at the top size: search the qualities there first (the floor included).
      const quality = firstFit(qualityAxis(0), 0, JPEG_QUALITIES.length, this.maxBytes);
      if (quality < JPEG_QUALITIES.length) return this.fitting.get(`0:${quality}`);
      lowestFailing = 0;
    }

    // 1. The first scale whose floor quality fits.
    const atFloor = new Map<number, number>();
    for (let s = 0; s < this.scales.length; s++) {
      const size = this.sizes.get(`${s}:${floor}`);
      if (size !== undefined) atFloor.set(s, size);
    }
    const scaleAxis: Axis = {
      n: this.scales.length,
      x: this.scales.map((s) => Math.log(s.width * s.height)),
      known: atFloor,
      prior: { index: 0, bytes: floorGuess },
      fits: (s) => {
        const fits = this.fits(s, floor);
        atFloor.set(s, this.sizes.get(`${s}:${floor}`)!);
        return fits;
      },
    };
    const scale = firstFit(scaleAxis, lowestFailing, this.scales.length, this.maxBytes);
    if (scale === this.scales.length) return undefined;

    // 2. The first (best) quality that fits at that scale; the floor is known to fit there.
    const quality = firstFit(qualityAxis(scale), scale === 0 ? 0 : -1, floor, this.maxBytes);
    return this.fitting.get(`${scale}:${quality}`);
  }

  /** Encodes rung (scale, quality) once and says whether it fits. */
  private fits(scaleIndex: number, qualityIndex: number): boolean {
    const key = `${scaleIndex}:${qualityIndex}`;
    const known = this.sizes.get(key);
    if (known !== undefined) return known <= this.maxBytes;
    const size = this.scales[scaleIndex]!;
    const quality = JPEG_QUALITIES[qualityIndex]!;
    const image = this.imageAt(scaleIndex);
    this.attempts++;
    const data = photon("encoding JPEG", this.header, () => image.get_bytes_jpeg(quality));
    this.sizes.set(key, data.length);
    if (!this.smallest || data.length < this.smallest.bytes)
      this.smallest = { bytes: data.length, quality, width: size.width, height: size.height };
    if (data.length > this.maxBytes) return false;
    this.fitting.set(key, { data, width: size.width, height: size.height, quality });
    return true;
  }

  /** The opaque thumbnail at a scale rung; lower rungs are resized from the top rung. */
  private imageAt(index: number): PhotonImage {
    if (index === 0) return this.flat;
    if (this.scaled?.index === index) return this.scaled.image;
    if (this.scaled) this.images.free(this.scaled.image);
    this.scaled = undefined;
    const size = this.scales[index]!;
    const from = this.scales[0]!;
    const filter = filterFor(Math.max(from.width, from.height), Math.max(size.width, size.height));
    const image = this.images.own(
      photon("resizing", this.header, () => resize(this.flat, size.width, size.height, filter)),
    );
    this.scaled = { index, image };
    return image;
  }
}

/**
 * The first rung in (lo, hi) that fits, given that rung `lo` does not (-1: none known) and rung
 * `hi` does (n: none known); returns `hi` unchanged when no open rung fits. Assumes fitting is
 * monotonic along the axis. Probes follow the size model; after three model probes in a row that
 * each left more than half of the open rungs, one midpoint probe is made.
 */
function firstFit(axis: Axis, lo: number, hi: number, maxBytes: number): number {
  let misses = 0;
  while (hi - lo > 1) {
    const open = hi - lo - 1;
    const bisect = misses >= 3;
    const probe: number = bisect ? Math.floor((lo + hi) / 2) : guess(axis, lo, hi, maxBytes);
    const fits = axis.fits(probe);
    const left: number = fits ? probe - lo - 1 : hi - probe - 1;
    misses = !bisect && left > open / 2 ? misses + 1 : 0;
    if (fits) hi = probe;
    else lo = probe;
  }
  return hi;
}

/** The first rung in (lo, hi) that the model expects to fit (hi - 1 if none). */
function guess(axis: Axis, lo: number, hi: number, maxBytes: number): number {
  const y = (bytes: number) => Math.log(Math.max(bytes - JPEG_OVERHEAD, 1));
  // Anchors: the nearest measurement at or below lo (or the prior) and at or above hi.
  let below: { index: number; bytes: number } | undefined;
  let above: { index: number; bytes: number } | undefined;
  for (const [index, bytes] of axis.known) {
    if (index <= lo && (!below || index > below.index)) below = { index, bytes };
    if (index >= hi && (!above || index < above.index)) above = { index, bytes };
  }
  below ??= axis.prior;
  const anchor = below ?? above;
  if (!anchor) return Math.floor((lo + hi) / 2);
  let slope = 1;
  if (below && above && axis.x[above.index] !== axis.x[below.index]) {
    const fitted = (y(above.bytes) - y(below.bytes)) / (axis.x[above.index]! - axis.x[below.index]!);
    if (fitted > 0 && Number.isFinite(fitted)) slope = fitted;
  }
  const target = y(maxBytes);
  for (let i = lo + 1; i < hi; i++) {
    if (y(anchor.bytes) + slope * (axis.x[i]! - axis.x[anchor.index]!) <= target) return i;
  }
  return hi - 1;
}

function filterFor(fromLong: number, toLong: number): SamplingFilter {
  return fromLong <= toLong * LANCZOS_MAX_RATIO ? SamplingFilter.Lanczos3 : SamplingFilter.Triangle;
}

// ---------------------------------------------------------------------------------------------
// photon plumbing

/** Tracks every PhotonImage made, so each is freed exactly once, also on error paths. */
class Images {
  private readonly live = new Set<PhotonImage>();
  own(image: PhotonImage): PhotonImage {
    this.live.add(image);
    return image;
  }
  free(image: PhotonImage): void {
    if (!this.live.delete(image)) return;
    try {
      image.free();
    } catch {
      // A panicked wasm call can leave an image unfreeable; nothing more to do.
    }
  }
  freeAll(): void {
    for (const image of [...this.live]) this.free(image);
  }
}

/** Runs one photon call; a wasm panic (`RuntimeError: unreachable`) or any error becomes not_an_image. */
function photon<T>(step: string, header: Header, call: () => T): T {
  try {
    return call();
  } catch (error) {
    const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    const animated = header.animated
      ? ` It is an animated ${header.format === "png" ? "PNG" : header.format === "webp" ? "WebP" : "GIF"}; only its first frame is used, and photon could not read it.`
      : "";
    throw new ThumbnailError(
      "not_an_image",
      `The ${describeFormat(header)} could not be processed (${step} failed: ${detail}).${animated}`,
    );
  }
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function sameSize(a: Size, b: Size): boolean {
  return a.width === b.width && a.height === b.height;
}

function describeFormat(header: Header): string {
  const name = { png: "PNG", jpeg: "JPEG", webp: "WebP", gif: "GIF" }[header.format];
  return header.animated ? `animated ${name}` : `${name} image`;
}

// ---------------------------------------------------------------------------------------------
// Pixels (RGBA, 4 bytes per pixel)

/** Premultiplied RGBA over white: c + 255·(1 - a), exactly. */
function onWhite(pixels: Uint8Array): Uint8Array {
  const out = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i += 4) {
    const white = 255 - pixels[i + 3]!;
    out[i] = Math.min(255, pixels[i]! + white);
    out[i + 1] = Math.min(255, pixels[i + 1]! + white);
    out[i + 2] = Math.min(255, pixels[i + 2]! + white);
    out[i + 3] = 255;
  }
  return out;
}

/** Applies EXIF orientation 1..8 to stored pixels, giving the displayed pixels. */
function orient(pixels: Uint8Array, stored: Size, orientation: number): Uint8Array {
  if (orientation < 2 || orientation > 8) return pixels;
  const { width: w, height: h } = stored;
  const src = new Uint32Array(pixels.buffer, pixels.byteOffset, w * h);
  const out = new Uint8Array(pixels.length);
  const dst = new Uint32Array(out.buffer);
  const swap = orientation >= 5;
  const ow = swap ? h : w;
  const oh = swap ? w : h;
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let sx: number;
      let sy: number;
      switch (orientation) {
        case 2:
          sx = w - 1 - x;
          sy = y;
          break;
        case 3:
          sx = w - 1 - x;
          sy = h - 1 - y;
          break;
        case 4:
          sx = x;
          sy = h - 1 - y;
          break;
        case 5:
          sx = y;
          sy = x;
          break;
        case 6:
          sx = y;
          sy = h - 1 - x;
          break;
        case 7:
          sx = w - 1 - y;
          sy = h - 1 - x;
          break;
        default:
          sx = w - 1 - y;
          sy = x;
          break; // 8
      }
      dst[y * ow + x] = src[sy * w + sx]!;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Headers: format, size, orientation, transparency and animation, without decoding

function readHeader(bytes: Uint8Array): Header {
  const format = sniffImageFormat(bytes);
  if (!format)
    throw new ThumbnailError(
      "not_an_image",
      "The file is not a PNG, JPEG, WebP or GIF image (unrecognised signature).",
    );
  const dims = probeDimensions(bytes);
  const name = { png: "PNG", jpeg: "JPEG", webp: "WebP", gif: "GIF" }[format];
  if (!dims || dims.width < 1 || dims.height < 1) {
    throw new ThumbnailError(
      "not_an_image",
      `The file starts like a ${name} but its header does not give a valid size (truncated or corrupt).`,
    );
  }
  const header: Header = {
    format,
    width: dims.width,
    height: dims.height,
    orientation: 1,
    mayHaveAlpha: format !== "jpeg",
    animated: false,
  };
  try {
    if (format === "png") readPng(bytes, header);
    else if (format === "jpeg") header.orientation = jpegOrientation(bytes);
    else if (format === "webp") readWebp(bytes, header);
    else header.animated = gifFrameCount(bytes) > 1;
  } catch {
    // Optional facts only; a damaged header is left to the decoder to judge.
  }
  return header;
}

function readPng(b: Uint8Array, header: Header): void {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const colorType = b[25];
  header.mayHaveAlpha = colorType === 4 || colorType === 6;
  for (let offset = 8, chunks = 0; offset + 8 <= b.length && chunks < 100_000; chunks++) {
    const length = view.getUint32(offset);
    const type = ascii(b, offset + 4, offset + 8);
    const data = offset + 8;
    if (type === "tRNS") header.mayHaveAlpha = true;
    else if (type === "acTL") header.animated = true;
    else if (type === "eXIf") header.orientation = tiffOrientation(b, data, Math.min(b.length, data + length));
    else if (type === "IEND") break;
    offset = data + length + 4;
  }
}

function jpegOrientation(b: Uint8Array): number {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let offset = 2;
  while (offset + 4 <= b.length) {
    if (b[offset] !== 0xff) return 1;
    const marker = b[offset + 1]!;
    if (marker === 0xff) {
      offset++;
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return 1;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      offset += 2;
      continue;
    }
    const length = view.getUint16(offset + 2);
    if (marker === 0xe1 && ascii(b, offset + 4, offset + 10) === "Exif\0\0") {
      return tiffOrientation(b, offset + 10, Math.min(b.length, offset + 2 + length));
    }
    offset += 2 + length;
  }
  return 1;
}

function readWebp(b: Uint8Array, header: Header): void {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  header.mayHaveAlpha = false;
  for (let offset = 12, chunks = 0; offset + 8 <= b.length && chunks < 100_000; chunks++) {
    const type = ascii(b, offset, offset + 4);
    const length = view.getUint32(offset + 4, true);
    const data = offset + 8;
    if (type === "VP8X") {
      const flags = b[data]!;
      header.animated = (flags & 0x02) !== 0;
      header.mayHaveAlpha = (flags & 0x10) !== 0 || header.animated;
    } else if (type === "VP8L" || type === "ALPH") {
      header.mayHaveAlpha = true;
    } else if (type === "EXIF") {
      const start = ascii(b, data, data + 6) === "Exif\0\0" ? data + 6 : data;
      header.orientation = tiffOrientation(b, start, Math.min(b.length, data + length));
    }
    offset = data + length + (length & 1);
  }
}

/** Orientation (tag 0x0112) from a TIFF structure in b[start, end); 1 when absent or invalid. */
function tiffOrientation(b: Uint8Array, start: number, end: number): number {
  if (end - start < 8) return 1;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const order = ascii(b, start, start + 2);
  if (order !== "II" && order !== "MM") return 1;
  const little = order === "II";
  if (view.getUint16(start + 2, little) !== 42) return 1;
  const ifd = start + view.getUint32(start + 4, little);
  if (ifd + 2 > end) return 1;
  const count = view.getUint16(ifd, little);
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + i * 12;
    if (entry + 12 > end) return 1;
    if (view.getUint16(entry, little) === 0x0112 && view.getUint16(entry + 2, little) === 3) {
      const value = view.getUint16(entry + 8, little);
      return value >= 1 && value <= 8 ? value : 1;
    }
  }
  return 1;
}
