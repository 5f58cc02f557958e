// The publish encoder (src/publish/encode.ts) inside workerd: libwebp through @jsquash/webp loaded
// as a WASM module import, photon for decode, resize, JPEG and PNG. Inputs are photo-like noisy
// gradients generated with photon, so the test needs no fixture files.
import { PhotonImage } from "@cf-wasm/photon";
import { describe, expect, it } from "vitest";
import {
  EncodeError,
  QUALITIES,
  SCALES,
  encodeForWeb,
  type EncodeResult,
  type PublishFormat,
} from "../../src/publish/encode";
import { decodePixels as decode } from "../support/photon";

/** A deterministic photo-like RGBA image: smooth gradients, a few soft blobs, sharp edges and grain. */
function photoLike(width: number, height: number, seed: number, alpha = false): Uint8Array {
  const px = new Uint8Array(width * height * 4);
  let s = seed >>> 0 || 1;
  const rand = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  const blobs = Array.from({ length: 6 }, () => ({
    x: rand() * width,
    y: rand() * height,
    r: (0.1 + rand() * 0.3) * width,
    c: [rand() * 255, rand() * 255, rand() * 255],
  }));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      let r = (x / width) * 180 + 40;
      let g = (y / height) * 160 + 50;
      let b = 200 - ((x + y) / (width + height)) * 150;
      for (const blob of blobs) {
        const d = Math.hypot(x - blob.x, y - blob.y) / blob.r;
        const k = Math.exp(-d * d);
        r += (blob.c[0]! - r) * k * 0.7;
        g += (blob.c[1]! - g) * k * 0.7;
        b += (blob.c[2]! - b) * k * 0.7;
      }
      const stripe = ((x >> 4) + (y >> 5)) % 7 === 0 ? 25 : 0; // some hard edges
      const grain = (rand() - 0.5) * 28;
      px[i] = clamp(r + grain + stripe);
      px[i + 1] = clamp(g + grain * 0.9);
      px[i + 2] = clamp(b + grain * 1.1 - stripe);
      px[i + 3] = alpha ? clamp(255 * Math.min(1, Math.hypot(x - width / 2, y - height / 2) / (width / 2))) : 255;
    }
  }
  return px;
}

const clamp = (v: number) => Math.max(0, Math.min(255, Math.round(v)));

function png(width: number, height: number, seed: number, alpha = false): Uint8Array {
  const image = new PhotonImage(photoLike(width, height, seed, alpha), width, height);
  try {
    return image.get_bytes();
  } finally {
    image.free();
  }
}

function jpeg(width: number, height: number, seed: number, quality = 90): Uint8Array {
  const image = new PhotonImage(photoLike(width, height, seed), width, height);
  try {
    return image.get_bytes_jpeg(quality);
  } finally {
    image.free();
  }
}

const ascii = (b: Uint8Array, start: number, end: number) => String.fromCharCode(...b.subarray(start, end));

function expectFormat(result: EncodeResult, format: PublishFormat, alpha = false): void {
  const b = result.bytes;
  expect(result.format).toBe(format);
  if (format === "webp") {
    expect(result.mime).toBe("image/webp");
    expect(ascii(b, 0, 4)).toBe("RIFF");
    expect(ascii(b, 8, 12)).toBe("WEBP");
    if (alpha) {
      expect(ascii(b, 12, 16)).toBe("VP8X");
      expect(ascii(b, 30, 34)).toBe("ALPH");
      expect(ascii(b, 0, b.length).includes("VP8 ")).toBe(true);
    } else {
      expect(ascii(b, 12, 16)).toBe("VP8 "); // lossy, not photon's lossless VP8L
    }
  } else if (format === "jpeg") {
    expect(result.mime).toBe("image/jpeg");
    expect([...b.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
  } else {
    expect(result.mime).toBe("image/png");
    expect([...b.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  }
}

async function encodeError(promise: Promise<unknown>): Promise<EncodeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EncodeError);
  return error as EncodeError;
}

describe("publish encoder: ladder", () => {
  const source = png(512, 384, 7);

  it("is deterministic: the same input gives byte-identical output", async () => {
    for (const format of ["webp", "jpeg", "png"] as const) {
      const maxBytes = format === "png" ? 120_000 : 30_000;
      const a = await encodeForWeb({ bytes: source, sourceMime: "image/png", format, maxBytes });
      const b = await encodeForWeb({ bytes: source, sourceMime: "image/png", format, maxBytes });
      expect(a.passthrough).toBe(false);
      expect(b.bytes).toEqual(a.bytes);
      expect([b.quality, b.scale, b.attempts, b.width, b.height]).toEqual([
        a.quality,
        a.scale,
        a.attempts,
        a.width,
        a.height,
      ]);
    }
  });

  it("never exceeds the budget, and the bytes match the requested format", async () => {
    const sources = [png(256, 256, 1), png(640, 427, 2), jpeg(768, 512, 3)];
    for (const bytes of sources) {
      for (const format of ["webp", "jpeg", "png"] as const) {
        for (const maxBytes of [8_000, 25_000, 60_000, 200_000]) {
          let result: EncodeResult;
          try {
            result = await encodeForWeb({ bytes, sourceMime: "image/png", format, maxBytes });
          } catch (e) {
            // Only PNG (lossless) may legitimately fail the small budgets.
            expect(format).toBe("png");
            expect((e as EncodeError).reason).toBe("cannot_fit");
            continue;
          }
          expect(result.bytes.length).toBeLessThanOrEqual(maxBytes);
          if (result.passthrough) continue;
          expectFormat(result, format);
          const decoded = decode(result.bytes);
          expect([decoded.width, decoded.height]).toEqual([result.width, result.height]);
          expect(SCALES).toContain(result.scale);
          if (format === "png") expect(result.quality).toBeNull();
          else expect(QUALITIES).toContain(result.quality);
          expect(result.attempts).toBeGreaterThan(0);
          expect(result.encode_ms).toBeGreaterThanOrEqual(0);
        }
      }
    }
  });

  it("finds the same rung as the linear walk in fewer encodes", async () => {
    let fewer = 0;
    for (const [format, maxBytes] of [
      ["webp", 12_000],
      ["webp", 3_000],
      ["jpeg", 15_000],
      ["png", 60_000],
    ] as const) {
      const search = await encodeForWeb({ bytes: source, sourceMime: "image/png", format, maxBytes });
      const linear = await encodeForWeb(
        { bytes: source, sourceMime: "image/png", format, maxBytes },
        { strategy: "linear" },
      );
      expect(search.bytes).toEqual(linear.bytes);
      expect([search.scale, search.quality]).toEqual([linear.scale, linear.quality]);
      expect(search.attempts).toBeLessThanOrEqual(linear.attempts);
      if (search.attempts < linear.attempts) fewer++;
    }
    expect(fewer).toBeGreaterThanOrEqual(3);
    // A representative case: a budget that needs a downscale takes a handful of encodes, not dozens.
    // (Up to 2 of those are the final-effort WebP encodes, see WEBP_FINAL_METHOD.)
    const hard = await encodeForWeb({ bytes: source, sourceMime: "image/png", format: "webp", maxBytes: 3_000 });
    const hardLinear = await encodeForWeb(
      { bytes: source, sourceMime: "image/png", format: "webp", maxBytes: 3_000 },
      { strategy: "linear" },
    );
    expect(hard.scale).toBeLessThan(1);
    expect(hard.attempts).toBeLessThanOrEqual(10);
    expect(hard.attempts * 3).toBeLessThan(hardLinear.attempts);
  });

  it("keeps alpha in WebP and PNG and composites JPEG on white", async () => {
    const bytes = png(200, 200, 5, true);
    const webp = await encodeForWeb({ bytes, sourceMime: "image/png", format: "webp", maxBytes: 40_000 });
    expectFormat(webp, "webp", true);
    const webpPixels = decode(webp.bytes).pixels;
    expect([webp.width, webp.height]).toEqual([200, 200]);
    expect(webpPixels[3]).toBe(255); // the corners are opaque, the centre transparent
    const centre = (100 * 200 + 100) * 4;
    expect(webpPixels[centre + 3]).toBeLessThan(40);

    const pngResult = await encodeForWeb({
      bytes: new Uint8Array([...bytes]),
      sourceMime: "image/png",
      format: "png",
      maxBytes: 20_000,
    });
    expectFormat(pngResult, "png");
    expect(pngResult.passthrough).toBe(false);
    const pngDecoded = decode(pngResult.bytes);
    const c = ((pngDecoded.height >> 1) * pngDecoded.width + (pngDecoded.width >> 1)) * 4;
    expect(pngDecoded.pixels[c + 3]).toBeLessThan(40);

    const jpg = await encodeForWeb({ bytes, sourceMime: "image/png", format: "jpeg", maxBytes: 40_000 });
    expectFormat(jpg, "jpeg");
    const jpgPixels = decode(jpg.bytes).pixels;
    expect(jpgPixels[centre + 3]).toBe(255);
    for (let k = 0; k < 3; k++) expect(jpgPixels[centre + k]).toBeGreaterThan(225); // white shows through
  });

  it("reports WASM memory (photon module-wide, libwebp per call)", async () => {
    const result = await encodeForWeb({ bytes: source, sourceMime: "image/png", format: "webp", maxBytes: 20_000 });
    expect(result.wasm_memory.photon).toBeGreaterThan(0);
    expect(result.wasm_memory.webp).toBeGreaterThan(0);
  });
});

describe("publish encoder: passthrough and refusals", () => {
  it("passes through a source already in the target format and within budget", async () => {
    const sourcePng = png(128, 96, 9);
    const p = await encodeForWeb({
      bytes: sourcePng,
      sourceMime: "image/png",
      format: "png",
      maxBytes: sourcePng.length,
    });
    expect(p).toMatchObject({
      passthrough: true,
      attempts: 0,
      quality: null,
      scale: 1,
      width: 128,
      height: 96,
      mime: "image/png",
    });
    expect(p.bytes).toBe(sourcePng);

    const sourceJpeg = jpeg(128, 96, 9);
    const j = await encodeForWeb({ bytes: sourceJpeg, sourceMime: "image/jpeg", format: "jpeg", maxBytes: 600_000 });
    expect(j.passthrough).toBe(true);
    expect(j.bytes).toBe(sourceJpeg);

    const webp = (await encodeForWeb({ bytes: sourcePng, sourceMime: "image/png", format: "webp", maxBytes: 600_000 }))
      .bytes;
    const w = await encodeForWeb({ bytes: webp, sourceMime: "image/webp", format: "webp", maxBytes: 600_000 });
    expect(w.passthrough).toBe(true);
    expect(w.bytes).toBe(webp);

    // forceEncode (web_optimize=true): a still is re-encoded even when it would pass through.
    const forced = await encodeForWeb({
      bytes: webp,
      sourceMime: "image/webp",
      format: "webp",
      maxBytes: 600_000,
      forceEncode: true,
    });
    expect(forced.passthrough).toBe(false);
    expect(forced.attempts).toBeGreaterThan(0);
    expectFormat(forced, "webp");

    // Same format but over budget: re-encoded, never passed through.
    const big = png(256, 256, 4);
    const shrunk = await encodeForWeb({ bytes: big, sourceMime: "image/png", format: "png", maxBytes: big.length - 1 });
    expect(shrunk.passthrough).toBe(false);
    expect(shrunk.bytes.length).toBeLessThan(big.length);
    // Another format within budget is converted (a .jpg target never gets WebP or PNG bytes).
    const converted = await encodeForWeb({ bytes: webp, sourceMime: "image/webp", format: "jpeg", maxBytes: 600_000 });
    expectFormat(converted, "jpeg");
  });

  it("passes animations through as-is and refuses to flatten them", async () => {
    const animatedWebp = animatedWebpHeader(320, 240);
    const ok = await encodeForWeb({ bytes: animatedWebp, sourceMime: "image/webp", format: "webp", maxBytes: 600_000 });
    expect(ok).toMatchObject({ passthrough: true, width: 320, height: 240 });
    expect(ok.bytes).toBe(animatedWebp);
    const forced = await encodeForWeb({
      bytes: animatedWebp,
      sourceMime: "image/webp",
      format: "webp",
      maxBytes: 600_000,
      forceEncode: true,
    });
    expect(forced.passthrough).toBe(true);

    const over = await encodeError(
      encodeForWeb({ bytes: animatedWebp, sourceMime: "image/webp", format: "webp", maxBytes: 10 }),
    );
    expect(over.reason).toBe("cannot_fit");
    expect(over.message).toMatch(/animated WebP.*only as-is/);

    const otherFormat = await encodeError(
      encodeForWeb({ bytes: animatedWebp, sourceMime: "image/webp", format: "png", maxBytes: 600_000 }),
    );
    expect(otherFormat.reason).toBe("unsupported");
    expect(otherFormat.message).toMatch(/first frame/);

    const apng = apngHeader(64, 64);
    expect(
      (await encodeForWeb({ bytes: apng, sourceMime: "image/png", format: "png", maxBytes: 600_000 })).passthrough,
    ).toBe(true);
    expect(
      (await encodeError(encodeForWeb({ bytes: apng, sourceMime: "image/png", format: "webp", maxBytes: 600_000 })))
        .reason,
    ).toBe("unsupported");

    const gif = animatedGif();
    const gifError = await encodeError(
      encodeForWeb({ bytes: gif, sourceMime: "image/gif", format: "webp", maxBytes: 600_000 }),
    );
    expect(gifError.reason).toBe("unsupported");
    expect(gifError.message).toMatch(/animated GIF/);
  });

  it("says cannot_fit for an absurd budget, with the smallest size achieved", async () => {
    for (const format of ["webp", "jpeg", "png"] as const) {
      const error = await encodeError(
        encodeForWeb({ bytes: png(300, 200, 11), sourceMime: "image/png", format, maxBytes: 60 }),
      );
      expect(error.reason).toBe("cannot_fit");
      expect(error.message).toMatch(/cannot be compressed below 60 bytes.*Smallest achieved: \d+ bytes/);
    }
  });

  it("says not_an_image for garbage and for a truncated image", async () => {
    const garbage = new TextEncoder().encode('{"not": "an image"}');
    const e1 = await encodeError(
      encodeForWeb({ bytes: garbage, sourceMime: "application/json", format: "webp", maxBytes: 1000 }),
    );
    expect(e1.reason).toBe("not_an_image");
    expect(e1.message).toMatch(/application\/json/);
    expect(
      (await encodeError(encodeForWeb({ bytes: new Uint8Array(), sourceMime: "", format: "png", maxBytes: 1000 })))
        .reason,
    ).toBe("not_an_image");
    const truncated = png(64, 64, 2).subarray(0, 60);
    const e2 = await encodeError(
      encodeForWeb({ bytes: truncated, sourceMime: "image/png", format: "jpeg", maxBytes: 1000 }),
    );
    expect(e2.reason).toBe("not_an_image");
    // photon panicked on that input; it still works afterwards.
    const after = await encodeForWeb({
      bytes: png(64, 64, 2),
      sourceMime: "image/png",
      format: "jpeg",
      maxBytes: 100_000,
    });
    expectFormat(after, "jpeg");
  });

  it("says too_large above the input cap, before decoding", async () => {
    const bytes = png(256, 256, 3);
    const error = await encodeError(
      encodeForWeb({ bytes, sourceMime: "image/png", format: "webp", maxBytes: 1000 }, { maxInputPixels: 50_000 }),
    );
    expect(error.reason).toBe("too_large");
    expect(error.message).toMatch(/256x256.*0\.1 MP limit/);
    // The header is enough: a header-only PNG claiming 10000x10000 is refused under the default cap.
    const huge = await encodeError(
      encodeForWeb({ bytes: pngHeader(10_000, 10_000), sourceMime: "image/png", format: "webp", maxBytes: 1000 }),
    );
    expect(huge.reason).toBe("too_large");
  });
});

// ---------------------------------------------------------------------------------------------
// Minimal headers (enough for sniffing; passthrough never decodes)

function u32be(n: number): number[] {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}
function u24le(n: number): number[] {
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255];
}
const bytesOf = (s: string) => [...s].map((c) => c.charCodeAt(0));

function pngHeader(width: number, height: number, extra: number[] = []): Uint8Array {
  const ihdr = [...u32be(13), ...bytesOf("IHDR"), ...u32be(width), ...u32be(height), 8, 6, 0, 0, 0, 0, 0, 0, 0];
  const iend = [...u32be(0), ...bytesOf("IEND"), 0, 0, 0, 0];
  return new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...ihdr, ...extra, ...iend]);
}

function apngHeader(width: number, height: number): Uint8Array {
  return pngHeader(width, height, [...u32be(8), ...bytesOf("acTL"), ...u32be(2), ...u32be(0), 0, 0, 0, 0]);
}

function animatedWebpHeader(width: number, height: number): Uint8Array {
  const vp8x = [...bytesOf("VP8X"), 10, 0, 0, 0, 0x02, 0, 0, 0, ...u24le(width - 1), ...u24le(height - 1)];
  const anim = [...bytesOf("ANIM"), 6, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  const body = [...bytesOf("WEBP"), ...vp8x, ...anim];
  return new Uint8Array([...bytesOf("RIFF"), ...u24le(body.length), 0, ...body]);
}

function animatedGif(): Uint8Array {
  const frame = [0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x4c, 0x01, 0];
  return new Uint8Array([
    ...bytesOf("GIF89a"),
    1,
    0,
    1,
    0,
    0x80,
    0,
    0,
    0,
    0,
    0,
    255,
    255,
    255,
    ...frame,
    ...frame,
    0x3b,
  ]);
}
