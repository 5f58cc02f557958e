/**
 * Publishing to the web: get_publish_info, publish_asset (the original's arguments and error
 * codes), list_published and unpublish. Files go to R2 under the caller's own prefix (the owner's
 * is the publish prefix itself, src/publish/principals.ts), in the format their name says (never
 * WebP bytes in a .jpg), within a byte budget checked before the source is read, with provenance
 * and the caller's principal in custom metadata, and with an entry in the caller's own manifest
 * when a manifest_key is given. Nobody sees, replaces or unpublishes another principal's files.
 */
import type { CallToolResult, McpServer } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import { sha256Hex } from "../auth/secrets";
import { failure, success } from "../mcp/results";
import { EncodeError, encodeForWeb, type PublishFormat } from "../publish/encode";
import {
  assertOwnedBy,
  MAX_PUBLISH_BYTES,
  ownerOf,
  PublishError,
  publicUrl,
  publishConfig,
  putPublished,
  readManifest,
  updateManifest,
  type PublishConfig,
} from "../publish/bucket";
import { inNamespace, isManifestKey, type Namespace, namespaceOf } from "../publish/principals";
import { readAtMost } from "../publish/source";
import type { AssetView } from "../studio/records";
import { requireScope, type ToolContext } from "./context";
import { runTool } from "./run";

const TARGET_FILENAME = /^[a-z0-9][a-z0-9._-]{0,63}\.(webp|png|jpg|jpeg)$/;
const MANIFEST_KEY = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const FORMAT_OF: Record<string, PublishFormat> = { webp: "webp", png: "png", jpg: "jpeg", jpeg: "jpeg" };
const MEDIA_EXTENSIONS: Record<string, string> = {
  "video/mp4": "mp4",
  "video/webm": "webm",
  "audio/mpeg": "mp3",
  "audio/flac": "flac",
  "audio/ogg": "ogg",
  "audio/wav": "wav",
  "image/gif": "gif",
};
const LIST_LIMIT = 100;
/**
 * The most bytes read of an image that is re-encoded rather than published as-is: a 16-bit RGBA
 * PNG at the encoder's 2048² input limit is 33.6 MB; nothing the encoder can take is larger.
 */
const MAX_IMAGE_SOURCE_BYTES = 36_000_000;
const VIEW_TIMEOUT_MS = 60_000;

// Schemas are built once per isolate: building them for every request was a third of a tools/list.
const getPublishInfoInput = z.object({});

const getPublishInfoOutput = z
  .object({
    status: z.enum(["ready", "needs_configuration"]),
    message: z.string(),
    prefix: z.string(),
    missing: z.array(z.string()),
  })
  .describe("Also bucket_bound, public_base_url, manifest_key, default_max_bytes.");

const publishAssetInput = z.object({
  asset_id: z.string().trim().min(1).max(200).describe("The asset to publish."),
  target_filename: z
    .string()
    .max(100)
    .optional()
    .describe("Demo mode: lower-case file name ending .webp, .png, .jpg or .jpeg."),
  manifest_key: z.string().max(100).optional().describe("Library mode: the manifest entry, [a-z0-9._-], max 64."),
  web_optimize: z.boolean().optional().describe("Re-encode even if it fits (default false)."),
  max_bytes: z
    .number()
    .int()
    .min(1_000)
    .max(MAX_PUBLISH_BYTES)
    .optional()
    .describe("Byte budget (default PUBLISH_MAX_BYTES, 600000)."),
  overwrite: z.boolean().optional().describe("Replace an existing file (default true)."),
});

const publishAssetOutput = z.looseObject({
  dest_url: z.string(),
  key: z.string(),
  bytes_size: z.number().int(),
  mime_type: z.string(),
});

const listPublishedInput = z.object({
  prefix: z.string().max(200).optional().describe("Only your files whose names start with this."),
  cursor: z.string().max(1000).optional().describe("next_cursor of the previous page."),
});

const listPublishedOutput = z.object({
  files: z.array(z.looseObject({ key: z.string(), url: z.string() })),
  count: z.number().int(),
  prefix: z.string(),
  manifest_key: z.string(),
  next_cursor: z.string().nullable(),
});

const unpublishInput = z.object({
  filename: z.string().min(1).max(200).describe("File name (hero.webp) or key."),
});

const unpublishOutput = z.object({
  key: z.string(),
  deleted: z.boolean(),
  manifest_entries_removed: z.array(z.string()),
});

export function registerPublishTools(server: McpServer, tools: ToolContext): void {
  const config = (): PublishConfig => publishConfig(tools.env, tools.config.publicUrl);

  server.registerTool(
    "get_publish_info",
    {
      title: "Show publishing setup",
      description:
        "Whether publishing works, where your files go (public URL, prefix, manifest, byte budget) and what is missing.",
      inputSchema: getPublishInfoInput,
      outputSchema: getPublishInfoOutput,
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    () =>
      runPublishTool(async () => {
        requireScope(tools, "generate");
        const c = config();
        const own = namespaceOf(c, tools.principal);
        const missing: string[] = [];
        if (!c.bucket)
          missing.push(
            "An R2 bucket bound as ASSETS_BUCKET (wrangler.toml [[r2_buckets]]; create it with `wrangler r2 bucket create comfyui-mcp-edge-assets`).",
          );
        if (!c.baseUrlConfigured)
          missing.push(
            "PUBLIC_BASE_URL (a custom domain or the bucket's public r2.dev URL). Until it is set, files are served through this gateway at /published/.",
          );
        return {
          status: c.bucket ? ("ready" as const) : ("needs_configuration" as const),
          message: c.bucket ? `Ready to publish to ${c.baseUrl}/${own.prefix}` : "Publishing needs an R2 bucket.",
          bucket_bound: Boolean(c.bucket),
          public_base_url: c.baseUrl,
          public_base_url_configured: c.baseUrlConfigured,
          prefix: own.prefix,
          manifest_key: own.manifestKey,
          default_max_bytes: c.maxBytes,
          missing,
        };
      }),
  );

  server.registerTool(
    "publish_asset",
    {
      title: "Publish an asset to the web",
      description:
        "Copy an asset to R2 under your prefix, within max_bytes. Demo mode: target_filename (its extension picks the format). " +
        "Library mode: manifest_key instead; a content-hashed name and a manifest entry. Errors carry a code.",
      inputSchema: publishAssetInput,
      outputSchema: publishAssetOutput,
      annotations: { destructiveHint: true, openWorldHint: true },
    },
    (args) =>
      runPublishTool(() => {
        requireScope(tools, "publish");
        return publish(tools, config(), args);
      }),
  );

  server.registerTool(
    "list_published",
    {
      title: "List published files",
      description: "Your published files (not manifests) with public URL, size, type and provenance.",
      inputSchema: listPublishedInput,
      outputSchema: listPublishedOutput,
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    ({ prefix, cursor }) =>
      runPublishTool(async () => {
        requireScope(tools, "generate");
        const c = config();
        if (!c.bucket) return notConfigured();
        const own = namespaceOf(c, tools.principal);
        // The delimiter keeps other users' folders (and their files) out of the owner's listing.
        const listed = await c.bucket.list({
          prefix: `${own.prefix}${prefix ?? ""}`,
          delimiter: "/",
          cursor,
          limit: LIST_LIMIT,
          include: ["httpMetadata", "customMetadata"],
        });
        const files = listed.objects
          .filter((object) => isOwnFile(c, own, object))
          .map((object) => ({
            key: object.key,
            url: publicUrl(c, object.key),
            bytes: object.size,
            mime_type: object.httpMetadata?.contentType ?? null,
            uploaded: object.uploaded.toISOString(),
            ...object.customMetadata,
            principal: ownerOf(object),
          }));
        return {
          files,
          count: files.length,
          prefix: own.prefix,
          manifest_key: own.manifestKey,
          next_cursor: listed.truncated ? listed.cursor : null,
        };
      }),
  );

  server.registerTool(
    "unpublish",
    {
      title: "Unpublish a file",
      description:
        "Delete one of your published files and its entries in your manifest (never a manifest itself). Errors carry a code.",
      inputSchema: unpublishInput,
      outputSchema: unpublishOutput,
      annotations: { destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    ({ filename }) =>
      runPublishTool(async () => {
        requireScope(tools, "publish");
        const c = config();
        if (!c.bucket) return notConfigured();
        return unpublish(c.bucket, c, namespaceOf(c, tools.principal), filename);
      }),
  );
}

/** A file the caller may see: in its own namespace, written by it (or by nobody recorded, for the owner), not a manifest. */
function isOwnFile(c: PublishConfig, own: Namespace, object: R2Object): boolean {
  return inNamespace(own, object.key) && !isManifestKey(c, object.key) && ownerOf(object) === own.principal;
}

async function unpublish(bucket: R2Bucket, c: PublishConfig, own: Namespace, filename: string) {
  // Published names never contain a slash: a name with one is a full key, any other is the caller's file.
  const key = filename.includes("/") ? filename : `${own.prefix}${filename}`;
  const segments = key.split("/");
  const name = segments.at(-1) ?? "";
  if (!/^[a-z0-9][a-z0-9._-]{0,99}$/.test(name) || segments.some((s) => s === "" || s === "." || s === ".."))
    return coded(
      "INVALID_TARGET_FILENAME",
      `'${filename}' is not a published file name; list_published shows yours (e.g. hero.webp).`,
    );
  if (isManifestKey(c, key))
    return coded(
      "MANIFEST_PROTECTED",
      `${key} is a manifest; unpublish never deletes one. Unpublish the files it lists and their entries go with them.`,
    );
  if (!inNamespace(own, key))
    return coded(
      "NOT_YOUR_FILE",
      `'${filename}' is not under your publish prefix ${own.prefix}; you can unpublish only your own files (list_published shows them).`,
    );
  const existing = await bucket.head(key);
  assertOwnedBy(existing, own.principal, key);
  if (existing) await bucket.delete(key);
  const removed: string[] = [];
  const manifest = await readManifest(bucket, own.manifestKey);
  if (Object.values(manifest).some((entry) => entry.filename === name)) {
    await updateManifest(bucket, own.manifestKey, own.principal, (m) => {
      removed.length = 0; // a retried update starts from the manifest as it is now
      for (const [entryKey, entry] of Object.entries(m)) {
        if (entry.filename === name) {
          delete m[entryKey];
          removed.push(entryKey);
        }
      }
    });
  }
  return { key, deleted: existing !== null, manifest_entries_removed: removed };
}

interface PublishArgs {
  asset_id: string;
  target_filename?: string;
  manifest_key?: string;
  web_optimize?: boolean;
  max_bytes?: number;
  overwrite?: boolean;
}

async function publish(tools: ToolContext, c: PublishConfig, args: PublishArgs) {
  if (!c.bucket) return notConfigured();
  const own = namespaceOf(c, tools.principal);
  if (args.target_filename !== undefined && !TARGET_FILENAME.test(args.target_filename)) {
    return coded(
      "INVALID_TARGET_FILENAME",
      `Invalid target_filename: '${args.target_filename}'. Must match ${TARGET_FILENAME.source} (lower case; the extension sets the format).`,
    );
  }
  if (args.target_filename === undefined && args.manifest_key === undefined) {
    return coded(
      "MANIFEST_KEY_REQUIRED",
      "manifest_key is required when target_filename is omitted (library mode). Provide either target_filename or manifest_key.",
    );
  }
  if (args.manifest_key !== undefined && !MANIFEST_KEY.test(args.manifest_key)) {
    return coded(
      "INVALID_MANIFEST_KEY",
      `Invalid manifest_key: '${args.manifest_key}'. Must match ${MANIFEST_KEY.source}.`,
    );
  }
  const asset: AssetView | undefined = await tools.studio.getAsset(args.asset_id);
  if (!asset)
    return coded(
      "ASSET_NOT_FOUND_OR_EXPIRED",
      `Asset ${args.asset_id} not found or expired (assets are kept ASSET_TTL_HOURS). list_assets shows what you have.`,
    );

  const maxBytes = args.max_bytes ?? c.maxBytes;
  const extension = args.target_filename?.split(".").pop();
  if (asset.kind !== "image" && args.target_filename) {
    return coded(
      "UNSUPPORTED_ASSET",
      `Asset ${asset.asset_id} is ${asset.kind} (${asset.mime_type}); it cannot be published as an image file. Omit target_filename and give a manifest_key to publish it as-is.`,
    );
  }
  // Never read more than can be published: the recorded size refuses before any download, the
  // read limit covers assets whose size was not recorded.
  const readLimit = asset.kind === "image" ? Math.max(maxBytes, MAX_IMAGE_SOURCE_BYTES) : maxBytes;
  if (asset.bytes_size !== null && asset.bytes_size > readLimit) return tooLarge(asset, asset.bytes_size, maxBytes, c);
  const response = await tools.backends.viewAsset(asset, { timeoutMs: VIEW_TIMEOUT_MS });
  const source = await readAtMost(response, readLimit, "/view", VIEW_TIMEOUT_MS);
  if (!source) return tooLarge(asset, null, maxBytes, c);

  let body: Uint8Array;
  let details: Record<string, unknown>;
  let mime: string;
  let fileExtension: string;
  if (asset.kind === "image") {
    const format: PublishFormat = extension
      ? FORMAT_OF[extension]!
      : args.web_optimize
        ? "webp"
        : (FORMAT_OF[asset.filename.split(".").pop()?.toLowerCase() ?? ""] ?? "webp");
    try {
      const encoded = await encodeForWeb({
        bytes: source,
        sourceMime: asset.mime_type,
        format,
        maxBytes,
        forceEncode: args.web_optimize ?? false,
      });
      body = encoded.bytes;
      mime = encoded.mime;
      fileExtension = extension ?? (format === "jpeg" ? "jpg" : format);
      details = {
        format: encoded.format,
        width: encoded.width,
        height: encoded.height,
        quality: encoded.quality,
        scale: encoded.scale,
        attempts: encoded.attempts,
        encode_ms: encoded.encode_ms,
        compressed: !encoded.passthrough,
      };
    } catch (error) {
      if (error instanceof EncodeError)
        return coded(error.reason === "cannot_fit" ? "BUDGET_UNREACHABLE" : "UNSUPPORTED_ASSET", error.message);
      throw error;
    }
  } else {
    // Audio, video and other files are published as they are, within the same budget (read no further).
    body = source;
    mime = asset.mime_type;
    fileExtension = MEDIA_EXTENSIONS[asset.mime_type] ?? asset.filename.split(".").pop()?.toLowerCase() ?? "bin";
    details = {
      format: fileExtension,
      width: asset.width,
      height: asset.height,
      quality: null,
      scale: 1,
      attempts: 0,
      encode_ms: 0,
      compressed: false,
    };
  }

  // Library mode names files by content, so they can be cached forever.
  const hash = await sha256Hex(body);
  const filename = args.target_filename ?? `${args.manifest_key}.${hash.slice(0, 12)}.${fileExtension}`;
  const key = `${own.prefix}${filename}`;
  if (isManifestKey(c, key))
    return coded("INVALID_TARGET_FILENAME", `${key} is where the manifest lives; choose another target_filename.`);
  const immutable = args.target_filename === undefined;
  await putPublished(
    c.bucket,
    key,
    body,
    {
      contentType: mime,
      cacheControl: immutable ? "public, max-age=31536000, immutable" : "public, max-age=300",
      custom: {
        asset_id: asset.asset_id,
        workflow_id: asset.workflow_id,
        prompt_id: asset.prompt_id,
        params_hash: hash.slice(0, 16),
        source: `${asset.folder_type}/${asset.subfolder ? `${asset.subfolder}/` : ""}${asset.filename}`,
      },
    },
    { overwrite: args.overwrite ?? true, principal: own.principal },
  );
  const url = publicUrl(c, key);
  let manifestEntries: number | null = null;
  if (args.manifest_key) {
    const entry = {
      url,
      filename,
      width: (details.width as number | null) ?? null,
      height: (details.height as number | null) ?? null,
      bytes: body.length,
      format: String(details.format),
      asset_id: asset.asset_id,
      published_at: new Date().toISOString(),
    };
    manifestEntries = (
      await updateManifest(
        c.bucket,
        own.manifestKey,
        own.principal,
        (manifest) => void (manifest[args.manifest_key!] = entry),
      )
    ).entries;
  }
  return success({
    dest_url: url,
    key,
    filename,
    bytes_size: body.length,
    mime_type: mime,
    ...details,
    source_bytes: source.length,
    compression_info: {
      compressed: details.compressed,
      original_size: source.length,
      final_size: body.length,
      quality: details.quality,
      downscaled: (details.scale as number) < 1,
    },
    manifest_key: args.manifest_key ?? null,
    manifest_entries: manifestEntries,
    asset_id: asset.asset_id,
  });
}

/** Refused before the source is read whole: its recorded (or declared) size is over what can be published. */
function tooLarge(asset: AssetView, size: number | null, maxBytes: number, c: PublishConfig) {
  const bytes = size === null ? "larger than that" : `${size} bytes`;
  if (asset.kind === "image")
    return coded(
      "UNSUPPORTED_ASSET",
      `Image asset ${asset.asset_id} is ${bytes}: over max_bytes ${maxBytes} and over the ${MAX_IMAGE_SOURCE_BYTES} bytes the gateway reads to re-encode an image, so it was not downloaded. Let ComfyUI save it smaller (WebP or JPEG, or fewer pixels) and publish that.`,
    );
  return coded(
    "BUDGET_UNREACHABLE",
    `Asset ${asset.asset_id} is ${bytes}, over max_bytes ${maxBytes}; ${asset.kind} files are published as-is, not re-encoded, so it was not downloaded. ` +
      `Pass a larger max_bytes (at most ${MAX_PUBLISH_BYTES}); the default budget is PUBLISH_MAX_BYTES (${c.maxBytes}).`,
  );
}

/** runTool, with the bucket's refusals (another user's file, a corrupt manifest, a conflict) as coded results. */
function runPublishTool(body: () => Promise<Record<string, unknown> | CallToolResult>): Promise<CallToolResult> {
  return runTool(() =>
    body().catch((error: unknown) => {
      if (error instanceof PublishError) return coded(error.code, error.message);
      throw error;
    }),
  );
}

function coded(code: string, message: string) {
  return failure(message, { error_code: code });
}

function notConfigured() {
  return coded(
    "PUBLISH_NOT_CONFIGURED",
    "Publishing needs an R2 bucket bound as ASSETS_BUCKET; get_publish_info says what to set.",
  );
}
