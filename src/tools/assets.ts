/**
 * Assets as MCP resources, so every `resource_link` a tool returns can be read: images as blobs
 * (up to a size cap), anything else (or anything larger) as its metadata. The bytes come from
 * ComfyUI through the gateway; the tunnel is never exposed.
 */
import { ResourceNotFoundError, ResourceTemplate, type McpServer } from "@modelcontextprotocol/server";
import type { AssetView } from "../studio/records";
import type { ToolContext } from "./context";
import { assetUri } from "./schemas";

/** Above this an inline blob hurts more than it helps (clients cap results at about 1 MB). */
const MAX_INLINE_BYTES = 700_000;
const LISTED_ASSETS = 50;

export function registerAssetResources(server: McpServer, tools: ToolContext): void {
  server.registerResource(
    "asset",
    new ResourceTemplate("comfy://assets/{asset_id}", {
      list: async () => ({
        resources: (await tools.studio.listAssets(LISTED_ASSETS)).map((asset) => ({
          uri: assetUri(asset),
          name: asset.filename,
          mimeType: asset.mime_type,
          description: describe(asset),
        })),
      }),
    }),
    {
      title: "Generated asset",
      description: "A file your ComfyUI produced through this gateway: images inline (up to about 700 KB), other files as metadata.",
    },
    async (uri, variables, ctx) => {
      const id = String(variables.asset_id ?? "");
      const asset: AssetView | undefined = await tools.studio.getAsset(id);
      if (!asset) throw new ResourceNotFoundError(uri.href, `No asset '${id}' in your studio. Use an asset_id from a generation result.`);
      const inline = asset.kind === "image" && asset.bytes_size !== null && asset.bytes_size <= MAX_INLINE_BYTES;
      if (inline) {
        const response = await tools.comfy.view({ filename: asset.filename, subfolder: asset.subfolder, type: asset.folder_type }, { signal: ctx.mcpReq.signal });
        const bytes = new Uint8Array(await response.arrayBuffer());
        return { contents: [{ uri: uri.href, mimeType: asset.mime_type, blob: Buffer.from(bytes).toString("base64") }] };
      }
      const note = asset.kind === "image" ? "Too large to inline." : `${asset.kind} assets are not inlined.`;
      return { contents: [{ uri: uri.href, mimeType: "application/json", text: JSON.stringify({ ...asset, note }, null, 2) }] };
    },
  );
}

function describe(asset: AssetView): string {
  return `${asset.kind}${asset.width && asset.height ? ` ${asset.width}x${asset.height}` : ""} from ${asset.workflow_id}, ${asset.created_at}`;
}
