/**
 * Turns a history entry's `outputs` into a flat list of files. Every node and every item counts
 * (batches, several save nodes); video is found under `images` with `animated` or under `gifs`
 * (comfyui-api.md §10.1); the mime type comes from the file name, never from the workflow.
 */
import type { NodeOutput, OutputFile } from "./types";

export type MediaKind = "image" | "video" | "audio" | "latent" | "other";

export interface OutputItem extends OutputFile {
  node_id: string;
  /** The output key it was listed under (`images`, `audio`, `gifs`, …). */
  key: string;
  mime_type: string;
  kind: MediaKind;
  animated: boolean;
}

const MIME_BY_EXTENSION: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  webp: "image/webp",
  gif: "image/gif",
  bmp: "image/bmp",
  mp4: "video/mp4",
  webm: "video/webm",
  mkv: "video/x-matroska",
  mov: "video/quicktime",
  flac: "audio/flac",
  mp3: "audio/mpeg",
  opus: "audio/ogg",
  ogg: "audio/ogg",
  wav: "audio/wav",
  m4a: "audio/mp4",
  latent: "application/octet-stream",
  glb: "model/gltf-binary",
};

export function mimeTypeOf(filename: string): string {
  const extension = filename.split(".").pop()?.toLowerCase() ?? "";
  return MIME_BY_EXTENSION[extension] ?? "application/octet-stream";
}

export function kindOf(mime: string, filename: string): MediaKind {
  if (mime.startsWith("image/")) return "image";
  if (mime.startsWith("video/")) return "video";
  if (mime.startsWith("audio/")) return "audio";
  if (filename.endsWith(".latent")) return "latent";
  return "other";
}

export function collectOutputs(outputs: Record<string, NodeOutput> | undefined): OutputItem[] {
  const items: OutputItem[] = [];
  for (const [nodeId, output] of Object.entries(outputs ?? {})) {
    const animated = Array.isArray(output.animated) && output.animated.some(Boolean);
    for (const [key, list] of Object.entries(output)) {
      if (!Array.isArray(list)) continue;
      for (const entry of list) {
        if (!isOutputFile(entry)) continue;
        const mime =
          typeof entry.format === "string" && entry.format.includes("/") && key === "gifs"
            ? videoMime(entry.format, entry.filename)
            : mimeTypeOf(entry.filename);
        items.push({ ...entry, node_id: nodeId, key, mime_type: mime, kind: kindOf(mime, entry.filename), animated });
      }
    }
  }
  return items;
}

function isOutputFile(entry: unknown): entry is OutputFile {
  if (typeof entry !== "object" || entry === null) return false;
  const candidate = entry as Record<string, unknown>;
  return typeof candidate.filename === "string" && typeof candidate.type === "string";
}

/** VideoHelperSuite reports `format: "video/h264-mp4"`; trust the extension first. */
function videoMime(format: string, filename: string): string {
  const byName = mimeTypeOf(filename);
  return byName !== "application/octet-stream" ? byName : (format.split("-")[0] ?? byName);
}
