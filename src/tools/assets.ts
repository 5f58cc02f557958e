/**
 * The studio's assets, for agents: list_assets (filtered, paged), get_asset_metadata (full
 * provenance), view_image (an inline thumbnail within a size budget) and the comfy://assets
 * resources every `resource_link` points at. Bytes always come from ComfyUI through the gateway.
 */
import { readBytes } from "../comfy/client";
import {
  ProtocolError,
  ProtocolErrorCode,
  ResourceNotFoundError,
  ResourceTemplate,
  type McpServer,
} from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import { ThumbnailError, makeThumbnail } from "../assets/thumbnail";
import { failure, success, ToolFailure } from "../mcp/results";
import type { AssetView } from "../studio/records";
import { missingScope, requireScope, type ToolContext } from "./context";
import { runTool } from "./run";
import { assetUri, downloadLinks } from "./schemas";
import { VIEW_META } from "../view/resource";

/** Above this an inline blob hurts more than it helps (clients cap results at about 1 MB). */
const MAX_INLINE_BYTES = 700_000;
const LISTED_ASSETS = 50;
/** The largest source view_image will fetch to make a thumbnail. */
const MAX_SOURCE_BYTES = 60 * 1024 * 1024;
const DEFAULT_MAX_DIM = 512;
const DEFAULT_MAX_B64 = 100_000;

const assetIdArg = z.string().trim().min(1, "asset_id is empty").max(200).describe("From a result or list_assets.");

// Schemas are built once per isolate: building them for every request was a third of a tools/list.
const listAssetsInput = z.object({
  limit: z
    .number()
    .int()
    .min(1, "limit must be at least 1")
    .max(100, "limit is at most 100; page with cursor")
    .optional()
    .describe("Default 10."),
  cursor: z.string().max(500).optional().describe("The previous next_cursor."),
  workflow_id: z.string().max(200).optional().describe("Only this workflow's."),
  media_type: z.enum(["image", "video", "audio", "latent", "other"]).optional().describe("Only this kind."),
  session_id: z.string().max(128).optional().describe("Only this session tag's; 'current' = this client's."),
});

const listAssetsOutput = z
  .object({
    assets: z.array(z.object({ asset_id: z.string(), download_url: z.string() })),
    count: z.number().int(),
    next_cursor: z.string().nullable(),
  })
  .describe("Also the filters applied (*_filter).");

const getAssetMetadataInput = z.object({ asset_id: assetIdArg });

const getAssetMetadataOutput = z.looseObject({
  asset_id: z.string(),
  download_url: z.string(),
  params: z.record(z.string(), z.unknown()),
});

const viewImageInput = z.object({
  asset_id: assetIdArg,
  mode: z.enum(["thumb", "metadata"]).optional().describe("thumb (default) or metadata only."),
  max_dim: z.number().int().min(16).max(2048).optional().describe("Longest side in pixels (default 512)."),
  max_b64_chars: z.number().int().min(1_000).max(1_000_000).optional().describe("Base64 budget (default 100000)."),
});

const viewImageOutput = z.looseObject({ asset_id: z.string(), mime_type: z.string(), download_url: z.string() });

export function registerAssetTools(server: McpServer, tools: ToolContext): void {
  server.registerTool(
    "list_assets",
    {
      title: "List your assets",
      description:
        "Your generated files, newest first, across sessions; filter by workflow, media type or session; page with next_cursor.",
      inputSchema: listAssetsInput,
      outputSchema: listAssetsOutput,
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
      _meta: VIEW_META,
    },
    ({ limit, cursor, workflow_id, media_type, session_id }) =>
      runTool(async () => {
        requireScope(tools, "generate");
        let session = session_id;
        if (session === "current") {
          if (!tools.session)
            throw new ToolFailure(
              "This client sends no session tag, so 'current' means nothing here. Send an X-Session-Tag header (see README, 'Sessions'), or pass a tag explicitly.",
            );
          session = tools.session;
        }
        const page = await tools.studio.listAssets({
          limit: limit ?? 10,
          cursor,
          workflow_id,
          kind: media_type,
          session,
        });
        if (!page) throw new ToolFailure("That cursor is not one this studio issued. Start again without cursor.");
        const links = await downloadLinks(tools, page.assets);
        return {
          assets: page.assets.map((asset) => ({
            ...asset,
            resource_uri: assetUri(asset),
            download_url: links[asset.asset_id]!,
          })),
          count: page.assets.length,
          next_cursor: page.next_cursor,
          workflow_id_filter: workflow_id ?? null,
          session_id_filter: session ?? null,
          media_type_filter: media_type ?? null,
        };
      }),
  );

  server.registerTool(
    "get_asset_metadata",
    {
      title: "Show an asset's provenance",
      description: "How an asset was made: file facts, workflow, parameters and seed, the graph sent, a download URL.",
      inputSchema: getAssetMetadataInput,
      outputSchema: getAssetMetadataOutput,
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    ({ asset_id }) =>
      runTool(async () => {
        requireScope(tools, "generate");
        const found = await tools.studio.assetProvenance(asset_id);
        if (!found) return notFound(asset_id);
        const links = await downloadLinks(tools, [found.asset]);
        const url = links[found.asset.asset_id]!;
        return {
          ...found.asset,
          resource_uri: assetUri(found.asset),
          download_url: url,
          asset_url: url,
          params: found.job.params,
          seed: found.job.params.seed ?? null,
          job_status: found.job.status,
          // How the job was settled: 'event' normally; anything else was a safety net (README).
          completed_via: found.job.completed_via,
          metadata: { workflow_id: found.asset.workflow_id, tool: found.asset.tool },
          submitted_workflow: JSON.parse(found.graph) as Record<string, unknown>,
          comfy_history: found.history ? (JSON.parse(found.history) as Record<string, unknown>) : null,
        };
      }),
  );

  server.registerTool(
    "view_image",
    {
      title: "View an image",
      description:
        "See a generated image: an inline thumbnail within max_dim and max_b64_chars, and a link to the full file.",
      inputSchema: viewImageInput,
      outputSchema: viewImageOutput,
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    ({ asset_id, mode, max_dim, max_b64_chars }, ctx) =>
      runTool(async () => {
        requireScope(tools, "generate");
        const asset: AssetView | undefined = await tools.studio.getAsset(asset_id);
        if (!asset) return notFound(asset_id);
        const url = (await downloadLinks(tools, [asset]))[asset.asset_id]!;
        const link = {
          type: "resource_link" as const,
          uri: assetUri(asset),
          name: asset.filename,
          mimeType: asset.mime_type,
        };
        const facts = { ...asset, resource_uri: assetUri(asset), download_url: url };
        if (mode === "metadata") return success(facts, [link]);
        if (asset.kind !== "image") {
          return failure(
            `Asset ${asset.asset_id} is ${asset.kind} (${asset.mime_type}), not an image, so it cannot be shown inline. Full file: ${url}`,
            { download_url: url, resource_uri: assetUri(asset) },
          );
        }
        const response = await tools.backends.viewAsset(asset, { signal: ctx.mcpReq.signal, timeoutMs: 30_000 });
        const declared = Number(response.headers.get("Content-Length") ?? "0");
        if (declared > MAX_SOURCE_BYTES) {
          await response.body?.cancel();
          return failure(`The image is too large to thumbnail here (${declared} bytes). Full file: ${url}`, {
            download_url: url,
          });
        }
        const bytes = await readBytes(response, "/view", 30_000);
        try {
          const thumb = makeThumbnail(bytes, {
            maxDim: max_dim ?? DEFAULT_MAX_DIM,
            maxB64Chars: max_b64_chars ?? DEFAULT_MAX_B64,
          });
          const summary = {
            ...facts,
            thumbnail: {
              mime_type: thumb.mimeType,
              width: thumb.width,
              height: thumb.height,
              bytes: thumb.bytes,
              base64_chars: thumb.base64.length,
              quality: thumb.quality,
            },
          };
          return success(summary, [{ type: "image", data: thumb.base64, mimeType: thumb.mimeType }, link]);
        } catch (error) {
          if (error instanceof ThumbnailError)
            return failure(`${error.message} Full file: ${url}`, {
              download_url: url,
              resource_uri: assetUri(asset),
              reason: error.reason,
            });
          throw error;
        }
      }),
  );
}

export function registerAssetResources(server: McpServer, tools: ToolContext): void {
  server.registerResource(
    "asset",
    new ResourceTemplate("comfy://assets/{asset_id}", {
      list: async () => {
        // Clients list resources on their own when they connect: without the scope the list is
        // empty rather than an error that could break the connection; reading one is refused.
        if (!tools.scopes.has("generate")) return { resources: [] };
        const page = await tools.studio.listAssets({ limit: LISTED_ASSETS });
        return {
          resources: (page?.assets ?? []).map((asset) => ({
            uri: assetUri(asset),
            name: asset.filename,
            mimeType: asset.mime_type,
            description: describe(asset),
          })),
        };
      },
    }),
    {
      title: "Generated asset",
      description:
        "A file your ComfyUI produced through this gateway: images inline (up to about 700 KB), other files as metadata with a download URL.",
    },
    async (uri, variables, ctx) => {
      if (!tools.scopes.has("generate"))
        throw new ProtocolError(ProtocolErrorCode.InvalidRequest, missingScope("generate", "reading assets"), {
          missing_scope: "generate",
          uri: uri.href,
        });
      const id = String(variables.asset_id ?? "");
      const asset: AssetView | undefined = await tools.studio.getAsset(id);
      if (!asset)
        throw new ResourceNotFoundError(
          uri.href,
          `No asset '${id}' in your studio. Use an asset_id from a generation result.`,
        );
      const inline = asset.kind === "image" && asset.bytes_size !== null && asset.bytes_size <= MAX_INLINE_BYTES;
      if (inline) {
        const response = await tools.backends.viewAsset(asset, { signal: ctx.mcpReq.signal });
        const bytes = await readBytes(response, "/view", 30_000);
        return {
          contents: [{ uri: uri.href, mimeType: asset.mime_type, blob: Buffer.from(bytes).toString("base64") }],
        };
      }
      const url = (await downloadLinks(tools, [asset]))[asset.asset_id]!;
      const note =
        asset.kind === "image"
          ? "Too large to inline; use download_url."
          : `${asset.kind} assets are not inlined; use download_url.`;
      return {
        contents: [
          {
            uri: uri.href,
            mimeType: "application/json",
            text: JSON.stringify({ ...asset, download_url: url, note }, null, 2),
          },
        ],
      };
    },
  );
}

function notFound(id: string) {
  return failure(
    `No asset '${id}' in your studio. It may have expired (assets are kept ASSET_TTL_HOURS) or belong to someone else; list_assets shows what you have.`,
  );
}

function describe(asset: AssetView): string {
  return `${asset.kind}${asset.width && asset.height ? ` ${asset.width}x${asset.height}` : ""} from ${asset.workflow_id}, ${asset.created_at}`;
}
