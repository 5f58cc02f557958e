// probeDuration against recorded ComfyUI outputs (test/fixtures/media-durations.json, copied from
// shared/comfyui-samples/files) plus hand-made variants for the paths those files don't take.

import { describe, expect, it } from "vitest";
import { probeDuration } from "../../src/comfy/duration";
import { PROBE_BYTES } from "../../src/comfy/media";
import fixture from "../fixtures/media-durations.json";
import { concat } from "../support/bytes";

type Sample = keyof typeof fixture.files;

const bytes = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
const sample = (name: Sample) => bytes(fixture.files[name].base64);
const mimeOf = (name: Sample) => fixture.files[name].mime;

/**
 * Expected durations, found independently (python3 parsing the containers by hand) and matching
 * what the recorded requests asked for (POST_prompt__*.json):
 * - mp4: 8 frames at 8 fps; mvhd 1000/1000 (the with-audio file's AAC track is 1.023 s, but mvhd says 1.0)
 * - webm: 6 frames at 6 fps; Info Duration 1000.0 × TimecodeScale 1e6 ns
 * - flac: EmptyAudio 1.0 s → 44100 samples @ 44100; the preview is 0.25 s → 5512 @ 22050 = 0.24998
 * - mp3: EmptyAudio 0.5 s; Info frame count 21 × 1152 − Lavf delay 576 − padding 1566 = 22050 @ 44100
 * - opus: EmptyAudio 0.5 s; last granule 24312 − pre-skip 312 = 24000 @ 48 kHz
 * - wav: synthesized, 6000 bytes of data at 8000 bytes/s
 */
const EXPECTED: Record<Sample, number> = {
  mp4: 1,
  mp4_with_audio: 1,
  webm: 1,
  flac: 1,
  flac_preview: 0.25,
  mp3: 0.5,
  opus: 0.5,
  wav: 0.75,
};
const SAMPLES = Object.keys(EXPECTED) as Sample[];

/** Copy with `patch` written at `at` (so a test can flip one field of a real file). */
function patched(source: Uint8Array, at: number, patch: ArrayLike<number>): Uint8Array {
  const copy = source.slice();
  copy.set(patch, at);
  return copy;
}

const ascii = (text: string) => Array.from(text, (c) => c.charCodeAt(0));
/** Byte offset of `text` (one char per byte) in `haystack`. */
const indexOf = (haystack: Uint8Array, text: string) => String.fromCharCode(...haystack).indexOf(text);

/** ISO-BMFF box with a 32-bit size, or a 64-bit `largesize` when asked. */
function box(type: string, payload: Uint8Array, large = false): Uint8Array {
  const header = large ? 16 : 8;
  const out = new Uint8Array(header + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, large ? 1 : out.length);
  out.set(ascii(type), 4);
  if (large) view.setBigUint64(8, BigInt(out.length));
  out.set(payload, header);
  return out;
}

function mvhd(version: 0 | 1, timescale: number, duration: number): Uint8Array {
  const payload = new Uint8Array(version === 1 ? 112 : 100);
  const view = new DataView(payload.buffer);
  view.setUint8(0, version);
  if (version === 1) {
    view.setUint32(20, timescale);
    view.setBigUint64(24, BigInt(duration));
  } else {
    view.setUint32(12, timescale);
    view.setUint32(16, duration);
  }
  return box("mvhd", payload);
}

describe("probeDuration on recorded ComfyUI outputs", () => {
  it.each(SAMPLES)("%s", (name) => {
    const file = sample(name);
    expect(probeDuration(file, file.length, mimeOf(name))).toBe(EXPECTED[name]);
    // What the gateway actually hands over: a PROBE_BYTES ranged read (these files are smaller).
    expect(probeDuration(file.subarray(0, PROBE_BYTES), file.length, mimeOf(name))).toBe(EXPECTED[name]);
  });

  it("needs no file size except for Ogg, whose answer sits in the last page", () => {
    for (const name of SAMPLES) {
      const expected = name === "opus" ? null : EXPECTED[name];
      expect(probeDuration(sample(name), null, mimeOf(name)), name).toBe(expected);
    }
  });

  it("sniffs the container from the bytes, not the mime type", () => {
    expect(probeDuration(sample("flac"), null, "application/octet-stream")).toBe(1);
    expect(probeDuration(sample("mp4"), null, "video/quicktime")).toBe(1);
    expect(probeDuration(sample("webm"), null, "video/x-matroska")).toBe(1);
  });
});

describe("MP4 / MOV", () => {
  it("reads mvhd version 1 (64-bit duration) and 64-bit box sizes, in a QuickTime-style file", () => {
    // wide + mdat (largesize) + moov, with moov after mdat: fine as long as we have the bytes.
    const file = concat(
      box("wide", new Uint8Array()),
      box("mdat", new Uint8Array(40), true),
      box("moov", mvhd(1, 90_000, 225_000)),
    );
    expect(probeDuration(file, file.length, "video/quicktime")).toBe(2.5);
    const v0 = concat(box("ftyp", new Uint8Array(ascii("isom"))), box("moov", mvhd(0, 600, 1234)));
    expect(probeDuration(v0, null, "video/mp4")).toBe(2.057);
  });

  it("gives null when moov sits after mdat beyond the bytes read", () => {
    const file = sample("mp4");
    const moovAt = indexOf(file, "moov") - 4;
    expect(probeDuration(file.subarray(0, moovAt), file.length, "video/mp4")).toBeNull();
    // A big mdat first: the next box starts past PROBE_BYTES.
    const big = new Uint8Array(PROBE_BYTES);
    big.set(box("ftyp", new Uint8Array(ascii("isom"))));
    new DataView(big.buffer).setUint32(12, 50_000_000);
    big.set(ascii("mdat"), 16);
    expect(probeDuration(big, 50_000_100, "video/mp4")).toBeNull();
  });

  it("gives null for unknown (all-ones) or fragmented (zero) durations and bad boxes", () => {
    expect(probeDuration(box("moov", mvhd(0, 1000, 0xffffffff)), null, "video/mp4")).toBeNull();
    expect(probeDuration(box("moov", mvhd(0, 1000, 0)), null, "video/mp4")).toBeNull();
    expect(probeDuration(box("moov", mvhd(0, 0, 1000)), null, "video/mp4")).toBeNull();
    const tooSmall = box("ftyp", new Uint8Array(8));
    new DataView(tooSmall.buffer).setUint32(0, 4); // size below the header: must not loop
    expect(probeDuration(tooSmall, null, "video/mp4")).toBeNull();
  });
});

describe("WebM / Matroska", () => {
  const file = sample("webm");

  it("honours TimecodeScale", () => {
    const at = indexOf(file, "\x2a\xd7\xb1") + 4; // 3-byte value 0x0f4240 (1e6 ns) after id + size
    expect(probeDuration(patched(file, at, [0x01, 0x86, 0xa0]), null, "video/webm")).toBe(0.1); // 1e5 ns
  });

  it("accepts an unknown-size Segment", () => {
    const at = indexOf(file, "\x18\x53\x80\x67") + 4;
    expect(probeDuration(patched(file, at, [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), null, "video/webm")).toBe(
      1,
    );
  });

  it("gives null without a Duration element (as live/MediaRecorder files are)", () => {
    const at = indexOf(file, "\x44\x89\x88");
    expect(probeDuration(patched(file, at, [0x44, 0x88]), null, "video/webm")).toBeNull(); // renamed element
  });
});

describe("FLAC", () => {
  it("skips a leading ID3v2 tag", () => {
    const id3 = new Uint8Array([...ascii("ID3"), 4, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0]);
    expect(probeDuration(concat(id3, sample("flac")), null, "audio/flac")).toBe(1);
  });

  it("gives null when STREAMINFO says total samples are unknown (0)", () => {
    const file = sample("flac");
    expect(probeDuration(patched(file, 21, [file[21]! & 0xf0, 0, 0, 0, 0]), null, "audio/flac")).toBeNull();
  });
});

describe("WAV", () => {
  const file = sample("wav");
  const sizeAt = indexOf(file, "data") + 4;

  it("uses the file size when the data size is a streaming placeholder", () => {
    const streamed = patched(file, sizeAt, [0xff, 0xff, 0xff, 0xff]);
    expect(probeDuration(streamed, file.length, "audio/wav")).toBe(0.75);
    expect(probeDuration(streamed, null, "audio/wav")).toBeNull();
  });

  it("trusts the file size over a data size that runs past it", () => {
    expect(probeDuration(file.subarray(0, sizeAt + 4 + 4000), file.length - 2000, "audio/wav")).toBe(0.5);
  });
});

describe("MP3", () => {
  const file = sample("mp3");
  const frameAt = 374; // after the ID3v2 tag
  const infoAt = frameAt + 4 + 17; // MPEG-1 mono side info
  const lameAt = infoAt + 120;

  it("without the encoder tag counts whole frames (21 × 1152 / 44100)", () => {
    expect(probeDuration(patched(file, lameAt, ascii("XXXX")), file.length, "audio/mpeg")).toBe(0.549);
  });

  it("reads a VBRI frame count", () => {
    const vbri = [...ascii("VBRI"), 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 42];
    const file2 = patched(patched(file, infoAt, [0, 0, 0, 0]), frameAt + 36, vbri);
    expect(probeDuration(file2, null, "audio/mpeg")).toBe(1.097); // 42 × 1152 / 44100
  });

  it("falls back to a CBR estimate from the first frame's bitrate and the size after ID3", () => {
    const cbr = patched(file, infoAt, ascii("XXXX"));
    expect(probeDuration(cbr, file.length, "audio/mpeg")).toBe(0.575); // (9568 − 374) × 8 / 128000
    expect(probeDuration(cbr, null, "audio/mpeg")).toBeNull();
  });

  it("accepts a bare frame stream only when the mime type says MP3", () => {
    const bare = file.subarray(frameAt);
    expect(probeDuration(bare, bare.length, "audio/mpeg")).toBe(0.5);
    expect(probeDuration(bare, bare.length, "application/octet-stream")).toBeNull();
  });
});

describe("Ogg Opus", () => {
  it("needs the whole file: null from a partial head", () => {
    const file = sample("opus");
    expect(probeDuration(file.subarray(0, file.length - 1), file.length, "audio/ogg")).toBeNull();
    expect(probeDuration(file, file.length + 1, "audio/ogg")).toBeNull();
  });
});

describe("truncated and garbage input", () => {
  it("every prefix of every sample gives null or the right answer, never a wrong one", () => {
    for (const name of SAMPLES) {
      const file = sample(name);
      for (let n = 0; n < file.length; n++) {
        for (const total of [null, file.length]) {
          const result = probeDuration(file.subarray(0, n), total, mimeOf(name));
          if (result !== null && result !== EXPECTED[name]) expect.fail(`${name} cut at ${n}/${total}: ${result}`);
        }
      }
    }
  });

  it("gives null for headers alone, empty input and constant bytes", () => {
    const inputs = [
      new Uint8Array(),
      new Uint8Array(ascii("fLaC")),
      new Uint8Array(ascii("OggS")),
      new Uint8Array(ascii("ID3")),
      new Uint8Array([...ascii("RIFF"), 0, 0, 0, 0, ...ascii("WAVE")]),
      new Uint8Array([0x1a, 0x45, 0xdf, 0xa3, 0x00]), // EBML with an invalid (9+ byte) size
      new Uint8Array(PROBE_BYTES),
      new Uint8Array(PROBE_BYTES).fill(0xff),
    ];
    for (const input of inputs) {
      for (const mime of ["audio/mpeg", "audio/flac", "video/mp4", "application/octet-stream"]) {
        expect(probeDuration(input, PROBE_BYTES * 2, mime)).toBeNull();
      }
    }
  });

  it("gives null for random bytes", () => {
    let seed = 0x2545f491;
    const random = new Uint8Array(PROBE_BYTES).map(() => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return seed & 0xff;
    });
    for (const mime of ["audio/mpeg", "audio/wav", "video/webm", "video/mp4", "audio/ogg"]) {
      expect(probeDuration(random, null, mime)).toBeNull();
    }
  });

  it("ignores a nonsensical file size instead of using it", () => {
    const file = sample("opus");
    expect(probeDuration(file, Number.NaN, "audio/ogg")).toBeNull();
    expect(probeDuration(sample("mp3"), -1, "audio/mpeg")).toBe(0.5);
  });
});
