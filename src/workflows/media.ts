/**
 * Input media for `PARAM_IMAGE_*` (and AUDIO/VIDEO) parameters: an asset of this studio, an https
 * URL, or base64 data. The bytes are checked (size, type) and uploaded to ComfyUI's input folder
 * under a content-hash name; the parameter gets the name ComfyUI will load.
 */
import type { ComfyClient } from "../comfy/client";
import type { Limit } from "../config";
import { sha256Hex } from "../auth/secrets";
import { probeDimensions, sniffImageFormat } from "../comfy/media";
import { ToolFailure } from "../mcp/results";
import { readBounded } from "../net/bounded-body";
import { checkPublicUrl } from "../net/public-url";
import type { AssetView } from "../studio/records";
import type { ParamSpec } from "./definition.ts";

/** Asset ids are canonical UUIDs. */
export const ASSET_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const MAX_MEDIA_BYTES = 20 * 1024 * 1024;
const FETCH_TIMEOUT_MS = 20_000;
const MAX_REDIRECTS = 3;

export interface MediaContext {
  /** The backend the job runs on: media are uploaded there. */
  comfy: ComfyClient;
  /** The backend holding an asset, to read it from when it is not the job's. */
  source(asset: AssetView): ComfyClient;
  getAsset(id: string): Promise<AssetView | undefined>;
  signal?: AbortSignal;
  /** Every configured backend's URL (COMFYUI_URL or the pool): never fetched as a media URL. */
  backendUrls?: readonly string[];
  /** Origins the operator trusts despite the SSRF rules (COMFY_MCP_FETCH_ALLOW_ORIGINS). */
  trustedOrigins?: ReadonlySet<string>;
  /** The caller's limit on an input image's longest side (COMFY_MCP_*_MAX_INPUT_IMAGE_SIDE). */
  maxImageSide?: Limit;
}

interface LoadedMedia {
  bytes: Uint8Array;
  mime: string;
}

/** Resolves a media reference to the file name ComfyUI should load for this parameter. */
export async function resolveMedia(
  context: MediaContext,
  spec: ParamSpec,
  reference: string,
  bindingClasses: string[],
): Promise<string> {
  const value = reference.trim();
  if (ASSET_ID.test(value)) {
    const asset = await context.getAsset(value.toLowerCase());
    if (!asset)
      throw new ToolFailure(
        `'${spec.name}': no asset '${value}' in your studio. Pass an asset_id from one of your results, an https URL or base64 data.`,
      );
    if (asset.kind !== spec.type)
      throw new ToolFailure(
        `'${spec.name}' needs ${article(spec.type)} ${spec.type}, but asset ${value} is ${article(asset.kind)} ${asset.kind}.`,
      );
    if (spec.type === "image" && asset.width !== null && asset.height !== null)
      checkImageSide(context, spec, { width: asset.width, height: asset.height });
    // LoadImage reads annotated paths from ComfyUI's output/temp folders directly: no copy needed
    // when the asset is on the backend that runs the job.
    const home = context.source(asset);
    if (
      spec.type === "image" &&
      bindingClasses.every((c) => c === "LoadImage") &&
      home.connection.name === context.comfy.connection.name
    ) {
      return `${asset.subfolder ? `${asset.subfolder}/` : ""}${asset.filename} [${asset.folder_type}]`;
    }
    const response = await home.view(
      { filename: asset.filename, subfolder: asset.subfolder, type: asset.folder_type },
      { signal: context.signal },
    );
    return upload(context, spec, { bytes: await readLimited(response, spec), mime: asset.mime_type });
  }
  if (/^https?:\/\//i.test(value)) return upload(context, spec, await download(context, spec, value));
  return upload(context, spec, decodeInline(spec, value));
}

async function upload(context: MediaContext, spec: ParamSpec, media: LoadedMedia): Promise<string> {
  const extension = checkType(context, spec, media);
  const hash = (await sha256Hex(media.bytes)).slice(0, 24);
  return context.comfy.uploadInput(media.bytes, `${hash}.${extension}`, media.mime, "mcp", { signal: context.signal });
}

/** The media must be what the parameter expects; returns the file extension to store it under. */
function checkType(context: MediaContext, spec: ParamSpec, media: LoadedMedia): string {
  if (spec.type === "image") {
    const dimensions = probeDimensions(media.bytes.subarray(0, 65_536));
    if (!dimensions)
      throw new ToolFailure(
        `'${spec.name}' is not a PNG, JPEG, WebP or GIF image (${media.bytes.length} bytes of ${media.mime || "unknown type"}).`,
      );
    checkImageSide(context, spec, dimensions);
    return imageExtension(media.bytes);
  }
  const [major, minor] = media.mime.split("/");
  if (major !== spec.type)
    throw new ToolFailure(
      `'${spec.name}' needs ${article(spec.type)} ${spec.type} file, got ${media.mime || "an unknown type"}.`,
    );
  return (minor ?? "bin").replace(/[^a-z0-9]/gi, "").slice(0, 8) || "bin";
}

/**
 * ComfyUI decodes an input image whole: a small file can declare a huge canvas (or a long thin
 * one), so the sides are checked from its header before it is uploaded.
 */
function checkImageSide(
  context: MediaContext,
  spec: ParamSpec,
  { width, height }: { width: number; height: number },
): void {
  const limit = context.maxImageSide;
  if (!limit || limit.value === null || Math.max(width, height) <= limit.value) return;
  throw new ToolFailure(
    `Limit exceeded: '${spec.name}' is ${width} × ${height} pixels; an input image may be at most ${limit.value} pixels on its longest side. ` +
      `Scale it down, then pass it again. The gateway's operator can raise this limit with ${limit.variable}.`,
    { kind: "limit_exceeded", limit: limit.value, variable: limit.variable },
  );
}

function imageExtension(bytes: Uint8Array): string {
  const format = sniffImageFormat(bytes) ?? "webp";
  return format === "jpeg" ? "jpg" : format;
}

async function download(context: MediaContext, spec: ParamSpec, url: string): Promise<LoadedMedia> {
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    checkPublicUrl(spec, current, context.backendUrls ?? [context.comfy.connection.baseUrl], context.trustedOrigins);
    let response: Response;
    try {
      const timeout = AbortSignal.timeout(FETCH_TIMEOUT_MS);
      response = await fetch(current, {
        redirect: "manual",
        signal: context.signal ? AbortSignal.any([context.signal, timeout]) : timeout,
      });
    } catch (error) {
      throw new ToolFailure(
        `'${spec.name}': could not download ${current} (${error instanceof Error ? error.message : String(error)}).`,
      );
    }
    if (response.status >= 300 && response.status < 400 && response.headers.get("Location")) {
      await response.body?.cancel();
      current = new URL(response.headers.get("Location")!, current).toString();
      continue;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new ToolFailure(`'${spec.name}': downloading ${current} failed with HTTP ${response.status}.`);
    }
    return {
      bytes: await readLimited(response, spec),
      mime: (response.headers.get("Content-Type") ?? "").split(";")[0]!.trim().toLowerCase(),
    };
  }
  throw new ToolFailure(`'${spec.name}': ${url} redirects too many times.`);
}

async function readLimited(response: Response, spec: ParamSpec): Promise<Uint8Array> {
  const body = await readBounded(response, MAX_MEDIA_BYTES);
  if (!body.ok) throw tooLarge(spec, body.size);
  return body.bytes;
}

function decodeInline(spec: ParamSpec, value: string): LoadedMedia {
  const match = /^data:([^;,]+)?(;base64)?,(.*)$/s.exec(value);
  const mime = match ? (match[1] ?? "").toLowerCase() : "";
  if (match && !match[2]) throw new ToolFailure(`'${spec.name}': only base64 data: URLs are accepted.`);
  const payload = (match ? match[3]! : value).replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(payload) || payload.length < 8) {
    throw new ToolFailure(
      `'${spec.name}' must be an asset_id from your studio, an https URL, or base64 data (a data: URL or raw base64).`,
    );
  }
  let binary: string;
  try {
    binary = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    throw new ToolFailure(`'${spec.name}' is not valid base64.`);
  }
  if (binary.length > MAX_MEDIA_BYTES) throw tooLarge(spec, binary.length);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return { bytes, mime: mime || guessMime(spec, bytes) };
}

function guessMime(spec: ParamSpec, bytes: Uint8Array): string {
  if (spec.type === "image") return `image/${sniffImageFormat(bytes) ?? "webp"}`;
  return `${spec.type}/octet-stream`;
}

function tooLarge(spec: ParamSpec, bytes: number): ToolFailure {
  return new ToolFailure(
    `'${spec.name}' is too large (${Math.round(bytes / 1024 / 1024)} MB; at most ${MAX_MEDIA_BYTES / 1024 / 1024} MB).`,
  );
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? "an" : "a";
}
