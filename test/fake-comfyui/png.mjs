// Minimal, fast PNG writer/reader: real, valid RGB 8-bit PNGs (correct CRCs, zlib via node:zlib),
// so tests can decode what SaveImage "wrote". Pixels are a deterministic pattern; speed matters
// more than compression (filter 0 on every row, deflate level 1: 512×512 in a few ms).
import { deflateSync } from "node:zlib";

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** @param {Uint8Array} buf @param {number} [start] @param {number} [end] */
export function crc32(buf, start = 0, end = buf.length) {
  let c = -1;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** @param {string} type @param {Buffer} data */
function chunk(type, data) {
  const b = Buffer.alloc(12 + data.length);
  b.writeUInt32BE(data.length, 0);
  b.write(type, 4, "latin1");
  data.copy(b, 8);
  b.writeUInt32BE(crc32(b, 4, 8 + data.length), 8 + data.length);
  return b;
}

/**
 * @typedef {{type: "solid", rgb: [number, number, number]} | {type: "pattern", hash: number}} PixelSource
 */

/**
 * Render the raw scanlines (filter byte 0 + RGB) for a width×height image.
 * "pattern": a diagonal two-colour gradient plus a checker tint, colours taken from `hash`, so
 * different seeds/prompts give visibly and byte-wise different images.
 * @param {number} w @param {number} h @param {PixelSource} src @param {boolean} invert
 */
function scanlines(w, h, src, invert) {
  const stride = 1 + w * 3;
  const raw = Buffer.alloc(stride * h);
  const x = invert ? 255 : 0;
  if (src.type === "solid") {
    const row = Buffer.alloc(stride);
    for (let i = 0; i < w; i++) {
      row[1 + i * 3] = src.rgb[0] ^ x;
      row[2 + i * 3] = src.rgb[1] ^ x;
      row[3 + i * 3] = src.rgb[2] ^ x;
    }
    for (let y = 0; y < h; y++) row.copy(raw, y * stride);
    return raw;
  }
  const hsh = src.hash >>> 0;
  const h2 = Math.imul(hsh ^ (hsh >>> 15), 0x2c1b3c6d) >>> 0;
  const a = [hsh & 255, (hsh >>> 8) & 255, (hsh >>> 16) & 255];
  const b = [h2 & 255, (h2 >>> 8) & 255, (h2 >>> 16) & 255];
  const span = Math.max(1, w + h - 2);
  const cell = Math.max(4, Math.min(w, h) >> 3 || 4);
  for (let y = 0; y < h; y++) {
    let p = y * stride + 1;
    const cy = ((y / cell) | 0) & 1;
    for (let i = 0; i < w; i++) {
      const t = (i + y) / span;
      const tint = (((i / cell) | 0) & 1) ^ cy ? 24 : 0;
      raw[p++] = ((a[0] + (b[0] - a[0]) * t + tint) & 255) ^ x;
      raw[p++] = ((a[1] + (b[1] - a[1]) * t) & 255) ^ x;
      raw[p++] = ((a[2] + (b[2] - a[2]) * t + tint) & 255) ^ x;
    }
  }
  return raw;
}

/**
 * Encode an RGB PNG.
 * @param {number} width @param {number} height
 * @param {PixelSource} source
 * @param {{invert?: boolean, text?: Record<string, string>, level?: number}} [opts]
 *   text: tEXt chunks (SaveImage writes "prompt" and the extra_pnginfo keys, as the recorded files do)
 */
export function encodePng(width, height, source, opts = {}) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2; // 8-bit, colour type 2 = RGB
  const parts = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr)];
  for (const [k, v] of Object.entries(opts.text ?? {})) {
    parts.push(chunk("tEXt", Buffer.concat([Buffer.from(k, "latin1"), Buffer.from([0]), Buffer.from(v, "latin1")])));
  }
  const idat = deflateSync(scanlines(width, height, source, !!opts.invert), { level: opts.level ?? 1 });
  parts.push(chunk("IDAT", idat), chunk("IEND", Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/**
 * Read width/height from a PNG's IHDR; null when the bytes are not a PNG.
 * @param {Uint8Array} buf
 * @returns {{width: number, height: number} | null}
 */
export function readPngSize(buf) {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 24 || b.readUInt32BE(0) !== 0x89504e47 || b.toString("latin1", 12, 16) !== "IHDR") return null;
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

/**
 * Walk every chunk and check its CRC (used by the self-check).
 * @param {Uint8Array} buf
 * @returns {{ok: boolean, chunks: string[]}}
 */
export function checkPngChunks(buf) {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const chunks = [];
  let off = 8;
  while (off + 12 <= b.length) {
    const len = b.readUInt32BE(off);
    const type = b.toString("latin1", off + 4, off + 8);
    if (off + 12 + len > b.length) return { ok: false, chunks };
    if (crc32(b, off + 4, off + 8 + len) !== b.readUInt32BE(off + 8 + len)) return { ok: false, chunks };
    chunks.push(type);
    off += 12 + len;
    if (type === "IEND") break;
  }
  return { ok: chunks[0] === "IHDR" && chunks.at(-1) === "IEND", chunks };
}
