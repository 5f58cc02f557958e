// The view_image encoder (src/assets/thumbnail.ts), inside workerd with the real photon wasm:
// the budget is never exceeded, the ladder search gives the linear walk's answer, output is
// deterministic, and bad, huge, animated and transparent inputs behave. Fixtures are generated
// here (deterministic pseudo-random "photos") or recorded (test/fixtures/media.json, from
// ComfyUI 0.3.64: png_512 = gw_test_00001_.png, webp_animated = gw_anim_00001_.webp).
import { PhotonImage } from "@cf-wasm/photon";
import { describe, expect, it } from "vitest";
import {
  MAX_THUMBNAIL_DIM,
  ThumbnailError,
  makeThumbnail,
  scaleLadder,
  type Thumbnail,
  type ThumbnailOptions,
} from "../../src/assets/thumbnail";
import media from "../fixtures/media.json";
import { decodePixels as decode } from "../support/photon";
import { photoLike } from "../support/photo-like";
import { concat } from "../support/bytes";

const fromBase64 = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));

type Encoding = "png" | "jpeg" | "webp";

function encode(pixels: Uint8Array, width: number, height: number, as: Encoding): Uint8Array {
  const image = new PhotonImage(pixels, width, height);
  try {
    return as === "png" ? image.get_bytes() : as === "jpeg" ? image.get_bytes_jpeg(92) : image.get_bytes_webp();
  } finally {
    image.free();
  }
}

function thumbnailError(bytes: Uint8Array, options: ThumbnailOptions): ThumbnailError {
  try {
    makeThumbnail(bytes, options);
  } catch (error) {
    if (error instanceof ThumbnailError) return error;
    throw error;
  }
  throw new Error("expected a ThumbnailError");
}

/** Mean absolute difference per channel (RGB) between two same-sized RGBA buffers. */
function meanDiff(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i += 4)
    sum += Math.abs(a[i]! - b[i]!) + Math.abs(a[i + 1]! - b[i + 1]!) + Math.abs(a[i + 2]! - b[i + 2]!);
  return sum / ((a.length / 4) * 3);
}

function expectValid(thumb: Thumbnail, options: ThumbnailOptions, source: { width: number; height: number }) {
  expect(thumb.base64.length).toBeLessThanOrEqual(options.maxB64Chars);
  expect(thumb.base64.length).toBe(4 * Math.ceil(thumb.bytes / 3));
  expect(Math.max(thumb.width, thumb.height)).toBeLessThanOrEqual(Math.min(options.maxDim, MAX_THUMBNAIL_DIM));
  expect(thumb.width).toBeLessThanOrEqual(source.width); // never upscaled
  expect(thumb.height).toBeLessThanOrEqual(source.height);
  expect(thumb.sourceWidth).toBe(source.width);
  expect(thumb.sourceHeight).toBe(source.height);
  expect(thumb.attempts).toBeGreaterThanOrEqual(1);
  const bytes = fromBase64(thumb.base64);
  expect(bytes.length).toBe(thumb.bytes);
  const decoded = decode(bytes);
  expect([decoded.width, decoded.height]).toEqual([thumb.width, thumb.height]);
  if (thumb.mimeType === "image/jpeg") {
    expect([...bytes.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
    expect([85, 75, 65, 55, 45, 35]).toContain(thumb.quality);
  } else {
    expect(thumb.mimeType).toBe("image/png");
    expect(thumb.quality).toBeNull();
  }
}

describe("makeThumbnail: the budget holds for any size, shape and budget", () => {
  // [width, height, source encoding, seed]; big sources are JPEG (a 4096² noisy PNG takes seconds
  // to encode and decode), small ones PNG, one lossless WebP.
  const sources: [number, number, Encoding][] = [
    [64, 64, "png"],
    [100, 37, "png"],
    [37, 100, "png"],
    [200, 200, "png"],
    [333, 500, "png"],
    [640, 480, "webp"],
    [512, 512, "png"],
    [800, 200, "png"],
    [300, 900, "png"],
    [1024, 1024, "png"],
    [1280, 720, "jpeg"],
    [720, 1280, "jpeg"],
    [1500, 1500, "jpeg"],
    [2048, 1152, "jpeg"],
    [2000, 3000, "jpeg"],
    [3000, 500, "jpeg"],
    [4096, 1024, "jpeg"],
    [4096, 4096, "jpeg"],
  ];
  const budgets = [2_000, 20_000, 100_000, 400_000];
  const maxDims = [128, 512, 1024];
  const combos = budgets.flatMap((maxB64Chars) => maxDims.map((maxDim) => ({ maxDim, maxB64Chars })));

  it.each(sources)("%i x %i (%s)", (width, height, as) => {
    const bytes = encode(photoLike(width, height, width * 31 + height), width, height, as);
    const long = Math.max(width, height);
    // Small sources get every combination; big ones (slow to decode) a deterministic few.
    const chosen =
      width * height >= 4096 * 4096
        ? [
            { maxDim: 512, maxB64Chars: 100_000 },
            { maxDim: 1024, maxB64Chars: 20_000 },
          ]
        : long <= 1024
          ? combos
          : combos.filter((_, i) => (i + width + height) % 4 === 0);
    if (width === 3000) chosen.push({ maxDim: 4096, maxB64Chars: 400_000 }); // maxDim is capped at 2048
    for (const options of chosen) {
      let thumb: Thumbnail;
      try {
        thumb = makeThumbnail(bytes, options);
      } catch (error) {
        // Only a budget below what a 32 px JPEG needs (about 1,150 characters for noise) may fail.
        expect(error).toBeInstanceOf(ThumbnailError);
        expect((error as ThumbnailError).reason).toBe("cannot_fit");
        expect(options.maxB64Chars).toBeLessThanOrEqual(2_000);
        continue;
      }
      expectValid(thumb, options, { width, height });
      // A generous budget never needs to shrink below the requested size.
      if (options.maxB64Chars >= 400_000 && options.maxDim <= 512)
        expect(Math.max(thumb.width, thumb.height)).toBe(Math.min(long, options.maxDim));
      if (options.maxDim === 4096) expect([thumb.width, thumb.height]).toEqual([MAX_THUMBNAIL_DIM, 341]);
      // The search lands on the rung the linear walk would: checked where the walk is cheap.
      if ((long <= 1024 && options.maxDim === 128) || (long <= 512 && options.maxDim === 512)) {
        const linear = makeThumbnail(bytes, { ...options, strategy: "linear" });
        expect([thumb.width, thumb.height, thumb.quality, thumb.base64]).toEqual([
          linear.width,
          linear.height,
          linear.quality,
          linear.base64,
        ]);
        expect(thumb.attempts).toBeLessThanOrEqual(Math.max(linear.attempts, 9));
      }
    }
  });

  it("fails with cannot_fit, naming the smallest size reached, only when even 32 px does not fit", () => {
    const bytes = encode(photoLike(600, 400, 5, 60), 600, 400, "png");
    const error = thumbnailError(bytes, { maxDim: 512, maxB64Chars: 600 });
    expect(error.reason).toBe("cannot_fit");
    const smallest = Number(/needs (\d+)/.exec(error.message)?.[1]);
    expect(smallest).toBeGreaterThan(600);
    expect(error.message).toMatch(/JPEG quality 35 at 32x21/);
    // ...and just above that smallest size, the 32 px rung is the answer.
    const thumb = makeThumbnail(bytes, { maxDim: 512, maxB64Chars: smallest });
    expect([thumb.width, thumb.height, thumb.quality, thumb.base64.length]).toEqual([32, 21, 35, smallest]);
  });

  it("walks the scale ladder in x0.75 steps down to a 32 px longest side", () => {
    expect(scaleLadder({ width: 1024, height: 768 }, 512).map((s) => `${s.width}x${s.height}`)).toEqual([
      "512x384",
      "384x288",
      "288x216",
      "216x162",
      "162x122",
      "122x92",
      "91x68",
      "68x51",
      "51x38",
      "38x29",
      "32x24",
    ]);
    expect(scaleLadder({ width: 20, height: 10 }, 20)).toEqual([{ width: 20, height: 10 }]);
    expect(scaleLadder({ width: 3000, height: 10 }, 33)).toEqual([
      { width: 33, height: 1 },
      { width: 32, height: 1 },
    ]);
  });
});

describe("makeThumbnail: determinism and scaling", () => {
  it("gives byte-identical output for the same bytes and options", () => {
    const bytes = encode(photoLike(900, 700, 77), 900, 700, "png");
    for (const options of [
      { maxDim: 512, maxB64Chars: 100_000 },
      { maxDim: 256, maxB64Chars: 5_000 },
    ]) {
      const first = makeThumbnail(bytes, options);
      const again = makeThumbnail(bytes.slice(), options);
      expect(again).toEqual(first);
    }
  });

  it("never upscales, and caps maxDim at 2048", () => {
    const bytes = encode(photoLike(100, 60, 3), 100, 60, "png");
    const thumb = makeThumbnail(bytes, { maxDim: 1024, maxB64Chars: 100_000 });
    expect([thumb.width, thumb.height, thumb.quality, thumb.attempts]).toEqual([100, 60, 85, 1]);
  });

  it("rejects nonsense options as a programming error", () => {
    const bytes = encode(photoLike(10, 10, 1), 10, 10, "png");
    expect(() => makeThumbnail(bytes, { maxDim: 0, maxB64Chars: 100_000 })).toThrow(RangeError);
    expect(() => makeThumbnail(bytes, { maxDim: 512, maxB64Chars: Number.NaN })).toThrow(RangeError);
  });
});

describe("makeThumbnail: inputs", () => {
  it("refuses bytes that are not an image, without crashing photon for later calls", () => {
    const png = fromBase64(media.png_512);
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(0), /not a PNG, JPEG, WebP or GIF/],
      [new TextEncoder().encode("<html>502 Bad Gateway</html>"), /not a PNG, JPEG, WebP or GIF/],
      [new Uint8Array([0x66, 0x4c, 0x61, 0x43, 0, 0, 0, 0x22]), /not a PNG, JPEG, WebP or GIF/], // FLAC
      [png.slice(0, 20), /header does not give a valid size/],
      [png.slice(0, 100), /PNG image could not be processed \(decoding .* failed: RuntimeError/], // a wasm panic
      [
        new Uint8Array([
          0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0xff, 0xd9,
        ]),
        /JPEG .* valid size/,
      ],
    ];
    for (const [bytes, message] of cases) {
      const error = thumbnailError(bytes, { maxDim: 512, maxB64Chars: 100_000 });
      expect(error.reason).toBe("not_an_image");
      expect(error.message).toMatch(message);
    }
    expect(makeThumbnail(png, { maxDim: 64, maxB64Chars: 100_000 }).width).toBe(64);
  });

  it("refuses more than 17 megapixels (4096² fits) from the header, before decoding", () => {
    const png = fromBase64(media.png_512).slice();
    const view = new DataView(png.buffer);
    view.setUint32(16, 8000);
    view.setUint32(20, 6000);
    const error = thumbnailError(png, { maxDim: 512, maxB64Chars: 100_000 });
    expect(error.reason).toBe("too_large");
    expect(error.message).toMatch(/8000x6000 \(48 MP\), above the 17 MP limit/);
    // A WebP canvas (VP8X) that claims 10000 x 5000.
    const webp = new Uint8Array(30);
    webp.set(new TextEncoder().encode("RIFF\0\0\0\0WEBPVP8X"));
    webp.set([10, 0, 0, 0, 0x10, 0, 0, 0, 0x0f, 0x27, 0, 0x87, 0x13, 0], 16);
    expect(thumbnailError(webp, { maxDim: 512, maxB64Chars: 100_000 }).reason).toBe("too_large");
  });

  it("thumbnails the recorded 512x512 PNG (gw_test_00001_.png) in one encode", () => {
    const thumb = makeThumbnail(fromBase64(media.png_512), { maxDim: 512, maxB64Chars: 100_000 });
    expectValid(thumb, { maxDim: 512, maxB64Chars: 100_000 }, { width: 512, height: 512 });
    expect([thumb.mimeType, thumb.quality, thumb.attempts]).toEqual(["image/jpeg", 85, 1]);
    const { pixels } = decode(fromBase64(thumb.base64));
    expect([...pixels.subarray(0, 3)].map((v) => Math.round(v / 8))).toEqual([32, 0, 0]); // red, as recorded
    // The tool's smallest budget (1,000 characters) still gets a picture of it.
    const small = makeThumbnail(fromBase64(media.png_512), { maxDim: 128, maxB64Chars: 1_000 });
    expectValid(small, { maxDim: 128, maxB64Chars: 1_000 }, { width: 512, height: 512 });
    expect(small.width).toBe(small.height);
  });

  it("shows the first frame of the recorded animated WebP (gw_anim_00001_.webp, 4 lossy frames)", () => {
    const bytes = fromBase64(media.webp_animated);
    const thumb = makeThumbnail(bytes, { maxDim: 512, maxB64Chars: 100_000 });
    expectValid(thumb, { maxDim: 512, maxB64Chars: 100_000 }, { width: 128, height: 128 });
    expect(thumb.mimeType).toBe("image/jpeg");
    // Rebuild each frame as a still WebP (its VP8 chunk alone) and compare.
    const frames = webpFrames(bytes).map((frame) => decode(frame).pixels);
    expect(frames).toHaveLength(4);
    expect(decode(bytes).pixels).toEqual(frames[0]); // photon decodes an animation as its first frame
    // The JPEG thumbnail is close to frame 1 (JPEG error only) and clearly further from the others.
    const shown = decode(fromBase64(thumb.base64)).pixels;
    const diffs = frames.map((frame) => meanDiff(shown, frame));
    expect(diffs[0]).toBeLessThan(8);
    for (const other of diffs.slice(1)) expect(other).toBeGreaterThan(diffs[0]! * 2);
    // A tight budget still works on it.
    const tight = makeThumbnail(bytes, { maxDim: 512, maxB64Chars: 3_000 });
    expect(tight.base64.length).toBeLessThanOrEqual(3_000);
  });

  it("shows the first frame of a lossless animated WebP with a transparent canvas, as PNG", () => {
    const bytes = animatedWebp(64, 64, [
      { x: 16, y: 16, width: 32, height: 32, rgba: [255, 0, 0, 255] },
      { x: 0, y: 0, width: 64, height: 64, rgba: [0, 255, 0, 255] },
    ]);
    const thumb = makeThumbnail(bytes, { maxDim: 512, maxB64Chars: 100_000 });
    expect([thumb.mimeType, thumb.width, thumb.height]).toEqual(["image/png", 64, 64]);
    const { pixels } = decode(fromBase64(thumb.base64));
    expect([...pixels.subarray(0, 4)]).toEqual([0, 0, 0, 0]);
    const centre = (32 * 64 + 32) * 4;
    expect([...pixels.subarray(centre, centre + 4)]).toEqual([255, 0, 0, 255]);
  });

  it("shows the first frame of an animated GIF, transparency included", () => {
    const bytes = gif(6, 4, [() => 0, () => 1], 3); // frame 1 red, frame 2 green
    const thumb = makeThumbnail(bytes, { maxDim: 512, maxB64Chars: 100_000 });
    expect([thumb.width, thumb.height]).toEqual([6, 4]);
    const { pixels } = decode(fromBase64(thumb.base64));
    expect([...pixels.subarray(0, 3)].map((v) => Math.round(v / 16))).toEqual([16, 0, 0]);
    const transparent = gif(6, 4, [(i) => (i % 2 ? 3 : 2)], 3); // blue and transparent pixels
    const alpha = makeThumbnail(transparent, { maxDim: 512, maxB64Chars: 100_000 });
    expect(alpha.mimeType).toBe("image/png");
    expect([...decode(fromBase64(alpha.base64)).pixels.subarray(0, 8)]).toEqual([0, 0, 255, 255, 0, 0, 0, 0]);
  });

  it("applies EXIF orientation (JPEG APP1, orientation 6 = rotate 90° clockwise)", () => {
    const pixels = new Uint8Array(60 * 20 * 4);
    for (let i = 0; i < 60 * 20; i++) pixels.set(i % 60 < 30 ? [255, 0, 0, 255] : [0, 0, 255, 255], i * 4); // left red, right blue
    const jpeg = encode(pixels, 60, 20, "jpeg");
    const tiff = [0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0];
    const app1 = [0xff, 0xe1, 0, 2 + 6 + tiff.length, ...new TextEncoder().encode("Exif\0\0"), ...tiff];
    const rotated = new Uint8Array([...jpeg.subarray(0, 2), ...app1, ...jpeg.subarray(2)]);
    const thumb = makeThumbnail(rotated, { maxDim: 512, maxB64Chars: 100_000 });
    expect([thumb.width, thumb.height, thumb.sourceWidth, thumb.sourceHeight]).toEqual([20, 60, 20, 60]);
    const shown = decode(fromBase64(thumb.base64)).pixels;
    const at = (x: number, y: number) =>
      [...shown.subarray((y * 20 + x) * 4, (y * 20 + x) * 4 + 3)].map((v) => Math.round(v / 32));
    expect(at(10, 5)).toEqual([8, 0, 0]); // red on top
    expect(at(10, 55)).toEqual([0, 0, 8]); // blue below
  });

  it("keeps transparency as PNG when it fits, else flattens on white for JPEG, without dark fringes", () => {
    // A noisy disc on a fully transparent black background.
    const inDisc = (x: number, y: number) => Math.hypot(x - 400, y - 300) < 250;
    const pixels = photoLike(800, 600, 9, 30, (x, y) => (inDisc(x, y) ? 255 : 0));
    for (let i = 0; i < 800 * 600; i++) if (pixels[i * 4 + 3] === 0) pixels.fill(0, i * 4, i * 4 + 3);
    const bytes = encode(pixels, 800, 600, "png");

    const png = makeThumbnail(bytes, { maxDim: 128, maxB64Chars: 400_000 });
    expect([png.mimeType, png.width, png.height, png.quality, png.attempts]).toEqual(["image/png", 128, 96, null, 1]);
    const kept = decode(fromBase64(png.base64)).pixels;
    expect(kept[3]).toBe(0); // corner still transparent

    const jpeg = makeThumbnail(bytes, { maxDim: 512, maxB64Chars: 50_000 });
    expectValid(jpeg, { maxDim: 512, maxB64Chars: 50_000 }, { width: 800, height: 600 });
    expect(jpeg.mimeType).toBe("image/jpeg");
    const flat = decode(fromBase64(jpeg.base64));
    expect([...flat.pixels.subarray(0, 3)].every((v) => v > 245)).toBe(true); // white corner
    // Along the disc's edge nothing is darker than the disc itself: premultiplied resizing.
    const row = Math.round(flat.height / 2);
    const scale = flat.width / 800;
    let edgeMin = 255;
    for (let x = Math.floor((400 + 240) * scale); x < Math.ceil((400 + 260) * scale); x++) {
      const o = (row * flat.width + x) * 4;
      edgeMin = Math.min(edgeMin, (flat.pixels[o]! + flat.pixels[o + 1]! + flat.pixels[o + 2]!) / 3);
    }
    expect(edgeMin).toBeGreaterThan(40);
  });
});

/** The frames of an animated WebP, each rebuilt as a still WebP from its VP8/VP8L chunk. */
function webpFrames(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fourcc = (at: number) => String.fromCharCode(...bytes.subarray(at, at + 4));
  const frames: Uint8Array[] = [];
  for (let at = 12; at + 8 <= bytes.length; ) {
    const length = view.getUint32(at + 4, true);
    if (fourcc(at) === "ANMF") {
      for (let sub = at + 24; sub < at + 8 + length; ) {
        const subLength = view.getUint32(sub + 4, true);
        if (fourcc(sub) === "VP8 " || fourcc(sub) === "VP8L")
          frames.push(riff([bytes.subarray(sub, sub + 8 + subLength + (subLength & 1))]));
        sub += 8 + subLength + (subLength & 1);
      }
    }
    at += 8 + length + (length & 1);
  }
  return frames;
}

function riff(chunks: Uint8Array[]): Uint8Array {
  const body = concat(new TextEncoder().encode("WEBP"), ...chunks);
  const out = concat(new TextEncoder().encode("RIFF"), new Uint8Array(4), body);
  new DataView(out.buffer).setUint32(4, body.length, true);
  return out;
}

function chunk(fourcc: string, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + payload.length + (payload.length & 1));
  out.set(new TextEncoder().encode(fourcc));
  new DataView(out.buffer).setUint32(4, payload.length, true);
  out.set(payload, 8);
  return out;
}

/** An animated WebP (VP8X + ANIM + ANMF) whose frames are solid lossless (VP8L) rectangles. */
function animatedWebp(
  width: number,
  height: number,
  frames: { x: number; y: number; width: number; height: number; rgba: number[] }[],
): Uint8Array {
  const u24 = (v: number) => [v & 255, (v >> 8) & 255, (v >> 16) & 255];
  const still = (w: number, h: number, rgba: number[]) => {
    const pixels = new Uint8Array(w * h * 4);
    for (let i = 0; i < pixels.length; i += 4) pixels.set(rgba, i);
    return encode(pixels, w, h, "webp").subarray(12); // the VP8L chunk
  };
  return riff([
    chunk("VP8X", new Uint8Array([0x12, 0, 0, 0, ...u24(width - 1), ...u24(height - 1)])),
    chunk("ANIM", new Uint8Array(6)),
    ...frames.map((f) =>
      chunk(
        "ANMF",
        concat(
          new Uint8Array([...u24(f.x / 2), ...u24(f.y / 2), ...u24(f.width - 1), ...u24(f.height - 1), ...u24(100), 0]),
          still(f.width, f.height, f.rgba),
        ),
      ),
    ),
  ]);
}

/**
 * A GIF89a with a 4-colour palette (red, green, blue, white), one frame per entry of `frames`
 * (pixel index → palette index), optionally with a transparent palette index. LZW data is written
 * with a clear code before every two pixels, so codes stay 3 bits wide.
 */
function gif(width: number, height: number, frames: ((i: number) => number)[], transparent?: number): Uint8Array {
  const out: number[] = [];
  const u16 = (v: number) => out.push(v & 255, v >> 8);
  out.push(...new TextEncoder().encode("GIF89a"));
  u16(width);
  u16(height);
  out.push(0xf1, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255);
  out.push(0x21, 0xff, 0x0b, ...new TextEncoder().encode("NETSCAPE2.0"), 3, 1, 0, 0, 0);
  for (const frame of frames) {
    out.push(0x21, 0xf9, 4, transparent === undefined ? 0 : 1, 10, 0, transparent ?? 0, 0);
    out.push(0x2c);
    u16(0);
    u16(0);
    u16(width);
    u16(height);
    out.push(0);
    const codes: number[] = [];
    for (let i = 0; i < width * height; i += 2) {
      codes.push(4, frame(i));
      if (i + 1 < width * height) codes.push(frame(i + 1));
    }
    codes.push(5);
    const data: number[] = [];
    let acc = 0;
    let bits = 0;
    for (const code of codes) {
      acc |= code << bits;
      bits += 3;
      while (bits >= 8) {
        data.push(acc & 255);
        acc >>= 8;
        bits -= 8;
      }
    }
    if (bits > 0) data.push(acc & 255);
    out.push(2);
    for (let i = 0; i < data.length; i += 255) {
      const block = data.slice(i, i + 255);
      out.push(block.length, ...block);
    }
    out.push(0);
  }
  out.push(0x3b);
  return new Uint8Array(out);
}
