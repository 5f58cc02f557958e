/**
 * Publishing to R2: create-only or replacing writes of published files, and the manifest
 * (`{key: {url, filename, ...}}`) updated with conditional writes (etag match) and retries, so
 * concurrent publishes never lose an entry and a corrupt manifest is reported, never overwritten.
 */

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
    maxBytes: Number.isInteger(maxBytes) && maxBytes > 0 ? maxBytes : 600_000,
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

/** Writes a published file; with `overwrite=false` only if nothing is there yet. */
export async function putPublished(
  bucket: R2Bucket,
  key: string,
  bytes: Uint8Array,
  meta: { contentType: string; cacheControl: string; custom: Record<string, string> },
  overwrite: boolean,
): Promise<R2Object> {
  const written = await bucket.put(key, bytes, {
    httpMetadata: { contentType: meta.contentType, cacheControl: meta.cacheControl },
    customMetadata: meta.custom,
    ...(overwrite ? {} : { onlyIf: new Headers({ "If-None-Match": "*" }) }),
  });
  if (!written)
    throw new PublishError(
      "TARGET_EXISTS",
      `${key} already exists and overwrite=false. Choose another target_filename, or pass overwrite=true to replace it.`,
    );
  return written;
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
 * Read-modify-write of the manifest under an etag precondition: a concurrent writer makes our
 * write fail, and we re-read and retry (with jittered backoff) instead of losing its entry.
 */
export async function updateManifest(
  bucket: R2Bucket,
  manifestKey: string,
  change: (manifest: Manifest) => void,
): Promise<{ entries: number; attempts: number }> {
  for (let attempt = 1; attempt <= MANIFEST_ATTEMPTS; attempt++) {
    const current = await bucket.get(manifestKey);
    const manifest = current ? parseManifest(manifestKey, await current.text()) : {};
    change(manifest);
    const written = await bucket.put(manifestKey, JSON.stringify(manifest, null, 2), {
      httpMetadata: { contentType: "application/json", cacheControl: "no-cache" },
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
