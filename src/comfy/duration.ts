/**
 * Reads the playing time of an audio/video output from its first bytes (the gateway fetches at most
 * `PROBE_BYTES` with a ranged GET), so a duration comes from the file and not from what the
 * workflow asked for. Every parser only trusts what the container itself declares; when that
 * declaration lies beyond the bytes we have (MP4 with `moov` after `mdat`, a long Ogg file), the
 * answer is null rather than a guess.
 *
 * Supported: MP4/MOV (mvhd), WebM/Matroska (Segment Info), FLAC (STREAMINFO), WAV (fmt + data),
 * MP3 (Xing/Info or VBRI frame count, else a CBR estimate), Ogg Opus (only when the head is the
 * whole file, so the last page's granule position is in hand).
 */

/**
 * Duration in seconds, rounded to milliseconds, or null when the bytes don't say.
 *
 * @param head the first bytes of the file (any length; the whole file is fine)
 * @param totalBytes the full file size when known (e.g. from Content-Range), else null
 * @param mime the output's mime type; only used to allow MP3 without an ID3 tag, whose frame sync
 *   alone is too weak a signature to sniff from arbitrary bytes
 */
export function probeDuration(head: Uint8Array, totalBytes: number | null, mime: string): number | null {
  try {
    const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
    const total = totalBytes !== null && Number.isSafeInteger(totalBytes) && totalBytes >= 0 ? totalBytes : null;
    const seconds = sniff(view, total, mime);
    if (seconds === null || !Number.isFinite(seconds) || seconds <= 0) return null;
    return Math.round(seconds * 1000) / 1000;
  } catch {
    // DataView reads past the end throw RangeError: a header cut short by the probe window (or
    // garbage that claims impossible sizes) means "cannot tell", never an error for the caller.
    return null;
  }
}

function sniff(view: DataView, total: number | null, mime: string): number | null {
  if (isIsoBmff(view)) return probeIsoBmff(view);
  if (view.byteLength >= 4 && view.getUint32(0) === EBML_HEADER) return probeMatroska(view);
  if (hasAscii(view, 0, "RIFF") && hasAscii(view, 8, "WAVE")) return probeWav(view, total);
  if (hasAscii(view, 0, "OggS")) return probeOggOpus(view, total);
  // Some taggers put ID3v2 in front of FLAC too, so skip it before deciding between FLAC and MP3.
  const audioStart = id3v2Length(view);
  if (hasAscii(view, audioStart, "fLaC")) return probeFlac(view, audioStart);
  if (audioStart > 0 || mime === "audio/mpeg" || mime === "audio/mp3") return probeMpegAudio(view, audioStart, total);
  return null;
}

// ---------------------------------------------------------------------------------------------
// MP4 / MOV (ISO base media): moov > mvhd holds timescale (ticks per second) and duration.

/** Box types that can open an ISO-BMFF/QuickTime file (QuickTime files need not start with ftyp). */
const ISO_FIRST_BOXES = new Set(["ftyp", "moov", "mdat", "free", "skip", "wide", "pnot"]);

function isIsoBmff(view: DataView): boolean {
  return view.byteLength >= 8 && ISO_FIRST_BOXES.has(ascii(view, 4, 4));
}

function probeIsoBmff(view: DataView): number | null {
  const moov = findBox(view, 0, view.byteLength, "moov");
  if (!moov) return null; // typically moov written after mdat, beyond the bytes we fetched
  const mvhd = findBox(view, moov.start, moov.end, "mvhd");
  if (!mvhd) return null;
  const version = view.getUint8(mvhd.start);
  if (version > 1) return null;
  // v0: version/flags(4) created(4) modified(4) timescale(4) duration(4); v1 widens times to 64 bits.
  const timescale = view.getUint32(mvhd.start + (version === 1 ? 20 : 12));
  const duration = version === 1 ? uint64(view, mvhd.start + 24) : view.getUint32(mvhd.start + 16);
  // All-ones means "unknown" (for v1 that is past 2^53, so caught by the safe-integer test);
  // 0 is what fragmented MP4 writes, the real length living in the fragments.
  const unknown = version === 1 ? !Number.isSafeInteger(duration) : duration === 0xffffffff;
  if (timescale === 0 || duration === 0 || unknown) return null;
  return duration / timescale;
}

interface Span {
  start: number;
  end: number;
}

/** Walks sibling boxes in [start, end) and returns the payload span of the first `type`. */
function findBox(view: DataView, start: number, end: number, type: string): Span | null {
  let at = start;
  while (at + 8 <= Math.min(end, view.byteLength)) {
    let size = view.getUint32(at);
    let header = 8;
    if (size === 1) {
      size = uint64(view, at + 8);
      header = 16;
    } else if (size === 0) {
      size = end - at; // "extends to the end of the file" (or of the parent)
    }
    if (size < header) return null; // garbage: would loop forever or walk backwards
    if (ascii(view, at + 4, 4) === type) return { start: at + header, end: Math.min(at + size, end) };
    at += size;
  }
  return null; // ran out of parent, or the next sibling starts past what we fetched
}

// ---------------------------------------------------------------------------------------------
// WebM / Matroska: Segment > Info > Duration (float, in TimecodeScale units of nanoseconds).

const EBML_HEADER = 0x1a45dfa3;
const SEGMENT = 0x18538067;
const SEGMENT_INFO = 0x1549a966;
const CLUSTER = 0x1f43b675;
const TIMECODE_SCALE = 0x2ad7b1;
const DURATION = 0x4489;

function probeMatroska(view: DataView): number | null {
  const header = readElement(view, 0);
  if (!header || header.id !== EBML_HEADER || header.end === null) return null;
  const segment = readElement(view, header.end);
  if (!segment || segment.id !== SEGMENT) return null;
  // Segment size is often "unknown" (live writers); then its children run to the end of the file.
  const segmentEnd = segment.end ?? Infinity;
  for (let at = segment.start; at < Math.min(segmentEnd, view.byteLength); ) {
    const child = readElement(view, at);
    if (!child) return null;
    if (child.id === SEGMENT_INFO) return child.end === null ? null : readSegmentInfo(view, child.start, child.end);
    // Info precedes the clusters in every muxer we know of; past the first cluster we'd be reading media.
    if (child.id === CLUSTER || child.end === null) return null;
    at = child.end;
  }
  return null;
}

function readSegmentInfo(view: DataView, start: number, end: number): number | null {
  let timecodeScale = 1_000_000; // spec default: timestamps in milliseconds
  let duration: number | null = null;
  for (let at = start; at < end; ) {
    const child = readElement(view, at);
    if (!child || child.end === null || child.end > end) return null;
    const length = child.end - child.start;
    if (child.id === TIMECODE_SCALE) timecodeScale = readUint(view, child.start, length);
    if (child.id === DURATION) {
      if (length === 4) duration = view.getFloat32(child.start);
      else if (length === 8) duration = view.getFloat64(child.start);
      else return null;
    }
    at = child.end;
  }
  // Duration is optional (MediaRecorder-style files omit it): then we can't tell.
  return duration === null ? null : (duration * timecodeScale) / 1e9;
}

interface EbmlElement {
  id: number;
  /** First byte of the payload. */
  start: number;
  /** One past the payload, or null for the "unknown size" marker. */
  end: number | null;
}

function readElement(view: DataView, at: number): EbmlElement | null {
  const id = readVint(view, at);
  // IDs keep their length marker and are at most 4 bytes long.
  if (!id || id.length > 4) return null;
  const size = readVint(view, at + id.length);
  if (!size) return null;
  const start = at + id.length + size.length;
  return { id: id.raw, start, end: size.allOnes ? null : start + size.value };
}

interface Vint {
  length: number;
  /** The bytes as written, marker included (how element IDs are compared). */
  raw: number;
  /** The value with the length marker stripped (how sizes are read). */
  value: number;
  /** All value bits set: the reserved "unknown size". */
  allOnes: boolean;
}

/** EBML variable-length integer: the position of the first set bit in byte 0 gives the length. */
function readVint(view: DataView, at: number): Vint | null {
  const first = view.getUint8(at);
  if (first === 0) return null; // would be longer than 8 bytes: not valid EBML
  const length = Math.clz32(first) - 23; // leading zeros within the byte, plus one
  const mask = 0xff >> length;
  let raw = first;
  let value = first & mask;
  let allOnes = value === mask;
  for (let i = 1; i < length; i++) {
    const byte = view.getUint8(at + i);
    raw = raw * 256 + byte;
    value = value * 256 + byte;
    allOnes &&= byte === 0xff;
  }
  return { length, raw, value, allOnes };
}

// ---------------------------------------------------------------------------------------------
// FLAC: STREAMINFO (always the first metadata block) packs sample rate and total samples.

function probeFlac(view: DataView, at: number): number | null {
  const blockType = view.getUint8(at + 4) & 0x7f;
  if (blockType !== 0) return null;
  // STREAMINFO payload starts at at+8; bytes 10..17 hold rate(20 bits) channels(3) depth(5) samples(36).
  const info = at + 8 + 10;
  const sampleRate = (view.getUint8(info) << 12) | (view.getUint8(info + 1) << 4) | (view.getUint8(info + 2) >> 4);
  const totalSamples = (view.getUint8(info + 3) & 0x0f) * 2 ** 32 + view.getUint32(info + 4);
  // 0 total samples is the encoder saying "unknown" (e.g. streamed output).
  if (sampleRate === 0 || totalSamples === 0) return null;
  return totalSamples / sampleRate;
}

// ---------------------------------------------------------------------------------------------
// WAV: RIFF chunks; fmt gives bytes per second, data gives the payload size.

function probeWav(view: DataView, total: number | null): number | null {
  let byteRate = 0;
  for (let at = 12; at + 8 <= view.byteLength; ) {
    const id = ascii(view, at, 4);
    const size = view.getUint32(at + 4, true);
    if (id === "fmt ") byteRate = view.getUint32(at + 8 + 8, true); // after format(2) channels(2) rate(4)
    if (id === "data") {
      if (byteRate === 0) return null;
      const dataStart = at + 8;
      // Streaming writers leave 0 or 0xFFFFFFFF and never patch it; a size past the end of the
      // file means a truncated recording. Either way the file size is the better witness.
      const placeholder = size === 0 || size === 0xffffffff;
      const truncated = total !== null && dataStart + size > total;
      if (placeholder || truncated) return total === null ? null : Math.max(0, total - dataStart) / byteRate;
      return size / byteRate;
    }
    at += 8 + size + (size & 1); // chunks are padded to even sizes
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// MP3 (MPEG audio layers I-III).

function probeMpegAudio(view: DataView, start: number, total: number | null): number | null {
  const found = findFrame(view, start);
  if (!found) return null;
  const { at, frame } = found;
  // A VBR file's bitrate changes per frame, so only a declared frame count gives a real duration.
  const counted = readXing(view, at, frame) ?? readVbri(view, at);
  if (counted) return (counted.frames * frame.samplesPerFrame - counted.trimmedSamples) / frame.sampleRate;
  // No header: assume constant bitrate over everything after the tag (an ID3v1 trailer adds ~0.01 s).
  if (total === null || total <= at) return null;
  return ((total - at) * 8) / frame.bitrate;
}

interface MpegFrame {
  mpeg1: boolean;
  mono: boolean;
  /** Bits per second. */
  bitrate: number;
  sampleRate: number;
  samplesPerFrame: number;
  /** Bytes, header included. */
  length: number;
}

/** kbps by [mpeg1 ? 0 : 1][layer - 1][index]; index 0 (free format) and 15 (bad) are excluded. */
const BITRATES = [
  [
    [32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    [32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  ],
  [
    [32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
    [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  ],
];
const MPEG1_SAMPLE_RATES = [44100, 48000, 32000];

function parseFrameHeader(header: number): MpegFrame | null {
  if (header >>> 21 !== 0x7ff) return null; // 11-bit frame sync
  const versionBits = (header >>> 19) & 3; // 0: MPEG 2.5, 1: reserved, 2: MPEG 2, 3: MPEG 1
  const layer = 4 - ((header >>> 17) & 3); // bits 01 = layer III ... 11 = layer I; 00 reserved
  const bitrateIndex = (header >>> 12) & 15;
  const rateIndex = (header >>> 10) & 3;
  if (versionBits === 1 || layer === 4 || bitrateIndex === 0 || bitrateIndex === 15 || rateIndex === 3) return null;
  const mpeg1 = versionBits === 3;
  const bitrate = BITRATES[mpeg1 ? 0 : 1]![layer - 1]![bitrateIndex - 1]! * 1000;
  const sampleRate = MPEG1_SAMPLE_RATES[rateIndex]! / (mpeg1 ? 1 : versionBits === 2 ? 2 : 4);
  const samplesPerFrame = layer === 1 ? 384 : layer === 2 || mpeg1 ? 1152 : 576;
  const padding = (header >>> 9) & 1;
  const length =
    layer === 1
      ? (Math.floor((12 * bitrate) / sampleRate) + padding) * 4
      : Math.floor(((samplesPerFrame / 8) * bitrate) / sampleRate) + padding;
  return { mpeg1, mono: ((header >>> 6) & 3) === 3, bitrate, sampleRate, samplesPerFrame, length };
}

/**
 * First frame header at or after `start`. A lone sync pattern is easy to hit in random bytes, so a
 * candidate also needs the next frame to start where its length says (when that lies in the head).
 */
function findFrame(view: DataView, start: number): { at: number; frame: MpegFrame } | null {
  for (let at = start; at + 4 <= view.byteLength; at++) {
    if (view.getUint8(at) !== 0xff) continue;
    const frame = parseFrameHeader(view.getUint32(at));
    if (!frame) continue;
    const next = at + frame.length;
    if (next + 4 > view.byteLength || parseFrameHeader(view.getUint32(next))) return { at, frame };
  }
  return null;
}

interface FrameCount {
  frames: number;
  /** Encoder delay + padding from a LAME/Lavf tag: silence the encoder added that isn't content. */
  trimmedSamples: number;
}

/** Xing (VBR) or Info (CBR) header, which sits right after the first frame's side information. */
function readXing(view: DataView, frameAt: number, frame: MpegFrame): FrameCount | null {
  const sideInfo = frame.mpeg1 ? (frame.mono ? 17 : 32) : frame.mono ? 9 : 17;
  const at = frameAt + 4 + sideInfo;
  // Plain reads (not hasAscii) on purpose: a head that stops inside the first frame throws, so a
  // truncated Xing frame yields null instead of a wrong CBR estimate.
  const tag = ascii(view, at, 4);
  if (tag !== "Xing" && tag !== "Info") return null;
  const flags = view.getUint32(at + 4);
  if (!(flags & 1)) return null; // no frame count: fall back to the CBR estimate
  const frames = view.getUint32(at + 8);
  // "Xing" flags(4), then optional frames(4) bytes(4) TOC(100) quality(4); the LAME extension follows.
  const lame = at + 12 + (flags & 2 ? 4 : 0) + (flags & 4 ? 100 : 0) + (flags & 8 ? 4 : 0);
  let trimmedSamples = 0;
  // LAME and FFmpeg (Lavf/Lavc) record the encoder delay and end padding (12 bits each) at +21;
  // removing them gives the content length (0.5 s rather than 0.549 s for ComfyUI's 0.5 s clip).
  if (["LAME", "Lavf", "Lavc"].includes(ascii(view, lame, 4))) {
    const packed = (view.getUint8(lame + 21) << 16) | view.getUint16(lame + 22);
    const trim = (packed >>> 12) + (packed & 0xfff);
    if (trim < frames * frame.samplesPerFrame) trimmedSamples = trim;
  }
  return frames > 0 ? { frames, trimmedSamples } : null;
}

/** Fraunhofer's VBRI header: always 32 bytes after the frame header. */
function readVbri(view: DataView, frameAt: number): FrameCount | null {
  const at = frameAt + 4 + 32;
  if (ascii(view, at, 4) !== "VBRI") return null;
  // "VBRI" version(2) delay(2) quality(2) bytes(4) frames(4)
  const frames = view.getUint32(at + 14);
  return frames > 0 ? { frames, trimmedSamples: 0 } : null;
}

/** Length of a leading ID3v2 tag (header, syncsafe size, optional footer), or 0 when there is none. */
function id3v2Length(view: DataView): number {
  if (!hasAscii(view, 0, "ID3") || view.byteLength < 10) return 0;
  let size = 0;
  for (let i = 6; i < 10; i++) {
    const byte = view.getUint8(i);
    if (byte & 0x80) return 0; // not syncsafe: not a real tag
    size = (size << 7) | byte;
  }
  const footer = view.getUint8(5) & 0x10 ? 10 : 0;
  return 10 + size + footer;
}

// ---------------------------------------------------------------------------------------------
// Ogg Opus: the duration is the last page's granule position (48 kHz samples) minus the pre-skip.
// That page sits at the end of the file, so it's only cheap when the head *is* the whole file —
// which it is for short clips (ComfyUI's SaveAudioOpus output of a few seconds is a few KiB).

function probeOggOpus(view: DataView, total: number | null): number | null {
  if (total === null || view.byteLength < total) return null;
  const first = readOggPage(view, 0);
  if (!first || !hasAscii(view, first.bodyStart, "OpusHead")) return null;
  const preSkip = view.getUint16(first.bodyStart + 10, true);
  // Scan back for the page that ends exactly at the end of the file: matching both the capture
  // pattern and the length rules out "OggS" appearing inside packet data.
  for (let at = total - 27; at >= 0; at--) {
    if (!hasAscii(view, at, "OggS")) continue;
    const page = readOggPage(view, at);
    if (!page || page.end !== total || page.serial !== first.serial) continue;
    if (page.granule === null) return null;
    return (page.granule - preSkip) / 48_000;
  }
  return null;
}

interface OggPage {
  serial: number;
  /** null for -1, "no packet ends on this page". */
  granule: number | null;
  bodyStart: number;
  end: number;
}

function readOggPage(view: DataView, at: number): OggPage | null {
  if (!hasAscii(view, at, "OggS") || view.getUint8(at + 4) !== 0) return null;
  const low = view.getUint32(at + 6, true);
  const high = view.getUint32(at + 10, true);
  const granule = low === 0xffffffff && high === 0xffffffff ? null : high * 2 ** 32 + low;
  const segments = view.getUint8(at + 26);
  let bodyLength = 0;
  for (let i = 0; i < segments; i++) bodyLength += view.getUint8(at + 27 + i);
  const bodyStart = at + 27 + segments;
  return { serial: view.getUint32(at + 14, true), granule, bodyStart, end: bodyStart + bodyLength };
}

// ---------------------------------------------------------------------------------------------
// Byte helpers. Reads go through DataView so running off the end throws (→ null) instead of
// silently yielding undefined/0 the way Uint8Array indexing would.

function ascii(view: DataView, at: number, length: number): string {
  let text = "";
  for (let i = 0; i < length; i++) text += String.fromCharCode(view.getUint8(at + i));
  return text;
}

/** Like `ascii(...) === text`, but false (not a throw) when the bytes aren't there: used for sniffing. */
function hasAscii(view: DataView, at: number, text: string): boolean {
  return at >= 0 && at + text.length <= view.byteLength && ascii(view, at, text.length) === text;
}

function uint64(view: DataView, at: number): number {
  return view.getUint32(at) * 2 ** 32 + view.getUint32(at + 4);
}

/** Big-endian unsigned integer of 1..8 bytes (EBML uint elements). */
function readUint(view: DataView, at: number, length: number): number {
  if (length < 1 || length > 8) throw new RangeError("EBML uint length");
  let value = 0;
  for (let i = 0; i < length; i++) value = value * 256 + view.getUint8(at + i);
  return value;
}
