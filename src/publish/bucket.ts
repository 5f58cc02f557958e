/**
 * Publishing to R2: create-only or replacing writes of published files, and the manifest
 * (`{key: {url, filename, ...}}`) updated with conditional writes (etag match) and retries, so
 * concurrent publishes never lose an entry and a corrupt manifest is reported, never overwritten.
 * Every object records the principal that wrote it; a principal replaces only its own objects.
 */
import { OWNER } from "../auth/owner";

export interface PublishConfig {
  bucket: R2Bucket | undefined;
  /** Where published files are served: a custom domain or the bucket's public URL; else the gateway. */
  baseUrl: string;
  baseUrlConfigured: boolean;
  prefix: string;
  manifestKey: string;
  maxBytes: number;
}

declare global {
  interface Env {
    PUBLIC_BASE_URL?: string;
    PUBLISH_PREFIX?: string;
    PUBLISH_MANIFEST_KEY?: string;
    PUBLISH_MAX_BYTES?: string;
  }
}

/**
 * The largest budget, from max_bytes or PUBLISH_MAX_BYTES: audio and video are read whole before
 * they are written, and a Worker isolate has 128 MB.
 */
export const MAX_PUBLISH_BYTES = 50_000_000;

export function publishConfig(env: Env, publicUrl: string): PublishConfig {
  const configured = (env.PUBLIC_BASE_URL ?? "").trim().replace(/\/+$/, "");
  const raw = (env.PUBLISH_PREFIX ?? "gen/").trim().replace(/^\/+/, "");
  const prefix = raw === "" || raw.endsWith("/") ? raw : `${raw}/`;
  const maxBytes = Number(env.PUBLISH_MAX_BYTES ?? "600000");
  return {
    bucket: env.ASSETS_BUCKET,
    baseUrl: configured || `${publicUrl}/published`,
    baseUrlConfigured: configured !== "",
    prefix,
    manifestKey: (env.PUBLISH_MANIFEST_KEY ?? "").trim() || `${prefix}manifest.json`,
    maxBytes: Number.isInteger(maxBytes) && maxBytes > 0 ? Math.min(maxBytes, MAX_PUBLISH_BYTES) : 600_000,
  };
}

export function publicUrl(config: PublishConfig, key: string): string {
  return `${config.baseUrl}/${key.split("/").map(encodeURIComponent).join("/")}`;
}

export class PublishError extends Error {
  override readonly name = "PublishError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The custom-metadata field that names the principal an object belongs to. */
export const PRINCIPAL_FIELD = "principal";

/** Who an object belongs to: the principal it records, or the owner for objects from before. */
export function ownerOf(object: Pick<R2Object, "customMetadata">): string {
  return object.customMetadata?.[PRINCIPAL_FIELD] || OWNER;
}

/** Refuses to touch an object another principal wrote; says so without naming that principal. */
export function assertOwnedBy(object: R2Object | null, principal: string, key: string): void {
  if (object && ownerOf(object) !== principal)
    throw new PublishError(
      "NOT_YOUR_FILE",
      `${key} was published by another user; you can replace or unpublish only your own files. Choose another name (list_published shows yours).`,
    );
}

const WRITE_ATTEMPTS = 6;

/**
 * Writes a published file for `principal`; with `overwrite=false` only if nothing is there yet.
 * A replacement is conditional on the etag of the object whose owner we checked, so nobody's file
 * can slip in between the check and the write (we look again instead).
 */
export async function putPublished(
  bucket: R2Bucket,
  key: string,
  bytes: Uint8Array,
  meta: { contentType: string; cacheControl: string; custom: Record<string, string> },
  options: { overwrite: boolean; principal: string },
): Promise<R2Object> {
  for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
    const existing = await bucket.head(key);
    if (existing && !options.overwrite)
      throw new PublishError(
        "TARGET_EXISTS",
        `${key} already exists and overwrite=false. Choose another target_filename, or pass overwrite=true to replace it.`,
      );
    assertOwnedBy(existing, options.principal, key);
    const written = await bucket.put(key, bytes, {
      httpMetadata: { contentType: meta.contentType, cacheControl: meta.cacheControl },
      customMetadata: { ...meta.custom, [PRINCIPAL_FIELD]: options.principal },
      onlyIf: existing ? { etagMatches: existing.etag } : new Headers({ "If-None-Match": "*" }),
    });
    if (written) return written;
  }
  throw new PublishError(
    "PUBLISH_CONFLICT",
    `${key} kept changing while it was being published; nothing was written. Retry publish_asset.`,
  );
}

export interface ManifestEntry {
  url: string;
  filename: string;
  width: number | null;
  height: number | null;
  bytes: number;
  format: string;
  asset_id: string;
  published_at: string;
}

export type Manifest = Record<string, ManifestEntry>;

const MANIFEST_ATTEMPTS = 12;

/**
 * Read-modify-write of a principal's manifest under an etag precondition: a concurrent writer
 * makes our write fail, and we re-read and retry (with jittered backoff) instead of losing its
 * entry. Each principal has its own manifest, but one principal may still publish from several
 * clients at once (the owner's laptop and its IDE), so the precondition is what keeps it whole.
 */
export async function updateManifest(
  bucket: R2Bucket,
  manifestKey: string,
  principal: string,
  change: (manifest: Manifest) => void,
): Promise<{ entries: number; attempts: number }> {
  for (let attempt = 1; attempt <= MANIFEST_ATTEMPTS; attempt++) {
    const current = await bucket.get(manifestKey);
    assertOwnedBy(current, principal, manifestKey);
    const manifest = current ? parseManifest(manifestKey, await current.text()) : {};
    change(manifest);
    const written = await bucket.put(manifestKey, JSON.stringify(manifest, null, 2), {
      httpMetadata: { contentType: "application/json", cacheControl: "no-cache" },
      customMetadata: { [PRINCIPAL_FIELD]: principal },
      onlyIf: current ? { etagMatches: current.etag } : new Headers({ "If-None-Match": "*" }),
    });
    if (written) return { entries: Object.keys(manifest).length, attempts: attempt };
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
  }
  throw new PublishError(
    "MANIFEST_CONFLICT",
    `The manifest ${manifestKey} kept changing under concurrent publishes; the file was published but its manifest entry was not written. Retry publish_asset.`,
  );
}

export async function readManifest(bucket: R2Bucket, manifestKey: string): Promise<Manifest> {
  const current = await bucket.get(manifestKey);
  return current ? parseManifest(manifestKey, await current.text()) : {};
}

function parseManifest(key: string, text: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new PublishError(
      "MANIFEST_CORRUPT",
      `The manifest ${key} in the bucket is not valid JSON; it was left untouched. Fix or delete it (wrangler r2 object get/delete), then publish again.`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new PublishError(
      "MANIFEST_CORRUPT",
      `The manifest ${key} is not a JSON object of entries; it was left untouched. Fix or delete it, then publish again.`,
    );
  }
  return value as Manifest;
}
