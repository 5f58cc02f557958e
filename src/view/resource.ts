/**
 * The studio view as an MCP App (extension io.modelcontextprotocol/ui, 2026-01-26): one ui://
 * resource that hosts render in a sandboxed frame next to the tools that name it. Hosts without
 * the extension ignore `_meta` and get the same results as before.
 */
import type { McpServer } from "@modelcontextprotocol/server";
import { publishConfig } from "../publish/bucket";
import type { ToolContext } from "../tools/context";
import { VIEW_HTML } from "./bundle.generated";

export const VIEW_URI = "ui://comfy/studio";
export const VIEW_MIME_TYPE = "text/html;profile=mcp-app";

/** What a tool's registration carries to name the view; kept small, it is in every tools/list. */
export const VIEW_META = { ui: { resourceUri: VIEW_URI } } as const;

export function registerStudioView(server: McpServer, tools: ToolContext): void {
  server.registerResource(
    "studio",
    VIEW_URI,
    {
      title: "ComfyUI studio",
      description: "The view MCP Apps hosts show next to generation tools: progress, results, gallery.",
      mimeType: VIEW_MIME_TYPE,
    },
    async (uri) => ({
      contents: [{ uri: uri.href, mimeType: VIEW_MIME_TYPE, text: VIEW_HTML, _meta: { ui: viewResourceMeta(tools) } }],
    }),
  );
}

/**
 * The frame's CSP, as the host builds it from these domains: media comes from the gateway's signed
 * download URLs and from wherever published files are served; the view fetches nothing itself.
 */
function viewResourceMeta(tools: ToolContext): Record<string, unknown> {
  return { csp: { resourceDomains: mediaOrigins(tools.env, tools.config.publicUrl) }, prefersBorder: true };
}

/**
 * Where the view's media come from, in a host's frame and on /studio alike: the gateway's origin
 * (signed downloads under /assets/, /published/) and the published files' origin (PUBLIC_BASE_URL).
 */
export function mediaOrigins(env: Env, publicUrl: string): string[] {
  const origins = new Set<string>();
  for (const url of [publicUrl, publishConfig(env, publicUrl).baseUrl]) {
    const origin = httpOrigin(url);
    if (origin) origins.add(origin);
  }
  return [...origins];
}

/** An http(s) URL's origin; anything else (unparsable, data:, opaque) names no source to allow. */
function httpOrigin(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.origin : undefined;
  } catch {
    return undefined;
  }
}
