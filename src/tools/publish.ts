/**
 * Publishing to the web: get_publish_info, publish_asset (the original's arguments and error
 * codes), list_published and unpublish. Files go to R2 under a prefix, in the format their name
 * says (never WebP bytes in a .jpg), within a byte budget, with provenance in custom metadata, and
 * with a manifest entry when a manifest_key is given.
 */
import { readBytes } from "../comfy/client";
import type { McpServer } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import { sha256Hex } from "../auth/secrets";
import { failure, success } from "../mcp/results";
import { EncodeError, encodeForWeb, type PublishFormat } from "../publish/encode";
import {
  PublishError,
  publicUrl,
  publishConfig,
  putPublished,
  readManifest,
  updateManifest,
  type PublishConfig,
} from "../publish/bucket";
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

export function registerPublishTools(server: McpServer, tools: ToolContext): void {
  const config = (): PublishConfig => publishConfig(tools.env, tools.config.publicUrl);

  server.registerTool(
    "get_publish_info",
    {
      title: "Show publishing setup",
      description:
        "Whether publishing to the web works and where files go: the R2 bucket, the public base URL, the key prefix, the manifest key, the default byte budget, and what is missing with how to set it. Call this before publish_asset.",
      inputSchema: z.object({}),
      outputSchema: z.object({
        status: z.enum(["ready", "needs_configuration"]),
        message: z.string(),
        bucket_bound: z.boolean(),
        public_base_url: z.string(),
        public_base_url_configured: z.boolean(),
        prefix: z.string(),
        manifest_key: z.string(),
        default_max_bytes: z.number().int(),
        missing: z.array(z.string()),
      }),
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    () =>
      runTool(async () => {
        const c = config();
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
          message: c.bucket ? `Ready to publish to ${c.baseUrl}/${c.prefix}` : "Publishing needs an R2 bucket.",
          bucket_bound: Boolean(c.bucket),
          public_base_url: c.baseUrl,
          public_base_url_configured: c.baseUrlConfigured,
          prefix: c.prefix,
          manifest_key: c.manifestKey,
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
        "Copy an asset to the R2 bucket so a site can serve it, within max_bytes. Demo mode: give target_filename (e.g. hero.webp; the " +
        "extension decides the format: webp, png or jpg). Library mode: omit it and give manifest_key; the file gets a content-hashed " +
        "name and an entry in the manifest. web_optimize=true always re-encodes (WebP in library mode). Error codes: " +
        "ASSET_NOT_FOUND_OR_EXPIRED, INVALID_TARGET_FILENAME, INVALID_MANIFEST_KEY, MANIFEST_KEY_REQUIRED, TARGET_EXISTS, BUDGET_UNREACHABLE, " +
        "UNSUPPORTED_ASSET, MANIFEST_CORRUPT, MANIFEST_CONFLICT, PUBLISH_NOT_CONFIGURED, PUBLISH_FAILED.",
      inputSchema: z.object({
        asset_id: z.string().trim().min(1).max(200).describe("The asset to publish."),
        target_filename: z
          .string()
          .max(100)
          .optional()
          .describe("Demo mode: the file name to publish as, lower case, ending in .webp, .png, .jpg or .jpeg."),
        manifest_key: z
          .string()
          .max(100)
          .optional()
          .describe("Library mode (and optional in demo mode): the manifest entry to write, [a-z0-9._-], max 64."),
        web_optimize: z
          .boolean()
          .optional()
          .describe("Re-encode even when the file already fits (WebP in library mode). Default false."),
        max_bytes: z
          .number()
          .int()
          .min(1_000)
          .max(50_000_000)
          .optional()
          .describe("Byte budget of the published file. Default 600000."),
        overwrite: z
          .boolean()
          .optional()
          .describe("Replace an existing file of that name. Default true; false refuses to replace."),
      }),
      outputSchema: z.looseObject({
        dest_url: z.string(),
        key: z.string(),
        bytes_size: z.number().int(),
        mime_type: z.string(),
      }),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    },
    (args) =>
      runTool(() => {
        requireScope(tools, "publish");
        return publish(tools, config(), args);
      }),
  );

  server.registerTool(
    "list_published",
    {
      title: "List published files",
      description:
        "Files in the bucket under the publish prefix (or a sub-prefix), with their public URL, size, type and provenance.",
      inputSchema: z.object({
        prefix: z.string().max(200).optional().describe("Only keys starting with this (inside the publish prefix)."),
        cursor: z.string().max(1000).optional().describe("next_cursor of the previous page."),
      }),
      outputSchema: z.object({
        files: z.array(z.looseObject({ key: z.string(), url: z.string() })),
        count: z.number().int(),
        next_cursor: z.string().nullable(),
      }),
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    ({ prefix, cursor }) =>
      runTool(async () => {
        const c = config();
        if (!c.bucket) return notConfigured();
        const listed = await c.bucket.list({
          prefix: `${c.prefix}${prefix ?? ""}`,
          cursor,
          limit: LIST_LIMIT,
          include: ["httpMetadata", "customMetadata"],
        });
        const files = listed.objects
          .filter((object) => object.key !== c.manifestKey)
          .map((object) => ({
            key: object.key,
            url: publicUrl(c, object.key),
            bytes: object.size,
            mime_type: object.httpMetadata?.contentType ?? null,
            uploaded: object.uploaded.toISOString(),
            ...object.customMetadata,
          }));
        return { files, count: files.length, next_cursor: listed.truncated ? listed.cursor : null };
      }),
  );

  server.registerTool(
    "unpublish",
    {
      title: "Unpublish a file",
      description:
        "Delete a published file from the bucket (by filename or key under the publish prefix) and remove the manifest entries that point to it.",
      inputSchema: z.object({
        filename: z.string().min(1).max(200).describe("The published file name (e.g. hero.webp) or its key."),
      }),
      outputSchema: z.object({ key: z.string(), deleted: z.boolean(), manifest_entries_removed: z.array(z.string()) }),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    ({ filename }) =>
      runTool(async () => {
        requireScope(tools, "publish");
        const c = config();
        if (!c.bucket) return notConfigured();
        const name = filename.startsWith(c.prefix) ? filename.slice(c.prefix.length) : filename;
        if (!/^[a-z0-9][a-z0-9._-]{0,99}$/.test(name))
          return failure(`'${filename}' is not a published file name.`, { error_code: "INVALID_TARGET_FILENAME" });
        const key = `${c.prefix}${name}`;
        const existed = (await c.bucket.head(key)) !== null;
        await c.bucket.delete(key);
        const removed: string[] = [];
        const manifest = await readManifest(c.bucket, c.manifestKey);
        if (Object.values(manifest).some((entry) => entry.filename === name)) {
          await updateManifest(c.bucket, c.manifestKey, (m) => {
            for (const [entryKey, entry] of Object.entries(m)) {
              if (entry.filename === name) {
                delete m[entryKey];
                removed.push(entryKey);
              }
            }
          });
        }
        return { key, deleted: existed, manifest_entries_removed: removed };
      }),
  );
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
  const response = await tools.backends.viewAsset(asset, { timeoutMs: 60_000 });
  const source = await readBytes(response, "/view", 60_000);

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
    // Audio, video and other files are published as they are, within the same budget.
    if (source.length > maxBytes)
      return coded(
        "BUDGET_UNREACHABLE",
        `Asset ${asset.asset_id} is ${source.length} bytes, over max_bytes ${maxBytes}; ${asset.kind} files are published as-is, not re-encoded. Raise max_bytes.`,
      );
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
  const key = `${c.prefix}${filename}`;
  const immutable = args.target_filename === undefined;
  try {
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
      args.overwrite ?? true,
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
        await updateManifest(c.bucket, c.manifestKey, (manifest) => void (manifest[args.manifest_key!] = entry))
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
  } catch (error) {
    if (error instanceof PublishError) return coded(error.code, error.message);
    throw error;
  }
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
