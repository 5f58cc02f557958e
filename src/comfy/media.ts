/**
 * Reads width/height from the first bytes of an image (PNG, JPEG, WebP, GIF), so dimensions come
 * from the file itself and not from whatever the workflow asked for.
 */

export interface Dimensions {
  width: number;
  height: number;
}

/** Enough bytes for every header we parse (JPEG SOF can sit after EXIF; we give up past this). */
export const PROBE_BYTES = 65_536;

export function probeDimensions(bytes: Uint8Array): Dimensions | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length >= 24 && view.getUint32(0) === 0x89504e47 && ascii(bytes, 12, 16) === "IHDR") {
    return { width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (bytes.length >= 10 && ascii(bytes, 0, 3) === "GIF") {
    return { width: view.getUint16(6, true), height: view.getUint16(8, true) };
  }
  if (bytes.length >= 30 && ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 12) === "WEBP")
    return probeWebp(bytes, view);
  if (bytes.length >= 4 && view.getUint16(0) === 0xffd8) return probeJpeg(bytes, view);
  return undefined;
}

function probeWebp(bytes: Uint8Array, view: DataView): Dimensions | undefined {
  const chunk = ascii(bytes, 12, 16);
  if (chunk === "VP8X") return { width: 1 + uint24le(bytes, 24), height: 1 + uint24le(bytes, 27) };
  if (chunk === "VP8 ") return { width: view.getUint16(26, true) & 0x3fff, height: view.getUint16(28, true) & 0x3fff };
  if (chunk === "VP8L") {
    const bits = view.getUint32(21, true);
    return { width: (bits & 0x3fff) + 1, height: ((bits >> 14) & 0x3fff) + 1 };
  }
  return undefined;
}

function probeJpeg(bytes: Uint8Array, view: DataView): Dimensions | undefined {
  let offset = 2;
  while (offset + 9 < bytes.length) {
    if (bytes[offset] !== 0xff) return undefined;
    const marker = bytes[offset + 1]!;
    const length = view.getUint16(offset + 2);
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: view.getUint16(offset + 5), width: view.getUint16(offset + 7) };
    }
    offset += 2 + length;
  }
  return undefined;
}

export function ascii(bytes: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...bytes.subarray(start, Math.min(end, bytes.length)));
}

/** "16.8" for 16,777,216 pixels: for messages about size limits. */
export function megapixels(pixels: number): string {
  return (pixels / 1_000_000).toFixed(1).replace(/\.0$/, "");
}

export type ImageFormat = "png" | "jpeg" | "webp" | "gif";

/** The image format from its magic bytes, or undefined for anything else. */
export function sniffImageFormat(b: Uint8Array): ImageFormat | undefined {
  if (
    b.length >= 8 &&
    b[0] === 0x89 &&
    ascii(b, 1, 4) === "PNG" &&
    b[4] === 0x0d &&
    b[5] === 0x0a &&
    b[6] === 0x1a &&
    b[7] === 0x0a
  )
    return "png";
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  if (b.length >= 6 && (ascii(b, 0, 6) === "GIF87a" || ascii(b, 0, 6) === "GIF89a")) return "gif";
  if (b.length >= 16 && ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 12) === "WEBP") return "webp";
  return undefined;
}

/** Counts GIF image descriptors, stopping at 2: only "animated or not" matters. */
export function gifFrameCount(b: Uint8Array): number {
  let offset = 13;
  const flags = b[10]!;
  if (flags & 0x80) offset += 3 * (1 << ((flags & 7) + 1));
  let frames = 0;
  const skipSubBlocks = (at: number) => {
    while (at < b.length && b[at] !== 0) at += b[at]! + 1;
    return at + 1;
  };
  while (offset < b.length && frames < 2) {
    const block = b[offset];
    if (block === 0x3b) break;
    if (block === 0x21) offset = skipSubBlocks(offset + 2);
    else if (block === 0x2c) {
      frames++;
      const local = b[offset + 9]!;
      offset += 10;
      if (local & 0x80) offset += 3 * (1 << ((local & 7) + 1));
      offset = skipSubBlocks(offset + 1); // LZW minimum code size, then the data sub-blocks
    } else break;
  }
  return frames;
}

function uint24le(bytes: Uint8Array, at: number): number {
  return bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16);
}
