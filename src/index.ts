/**
 * Worker entry: MCP at /mcp, health at /healthz. The caller's identity picks their studio; until
 * the auth issue lands, only an explicitly allowed local (loopback) gateway serves MCP, and every
 * other deployment fails closed.
 */
import { createMcpHandler } from "agents/mcp/server";
import { Hono } from "hono";
import { streamAsset, verifyDownload } from "./assets/downloads";
import { ComfyClient } from "./comfy/client";
import { publishConfig } from "./publish/bucket";
import { VERSION, comfyConnection, readConfig } from "./config";
import { buildMcpServer } from "./mcp/server";
import type { ToolContext } from "./tools/context";

export { Studio } from "./studio/studio";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

const app = new Hono<{ Bindings: Env }>();

app.get("/healthz", async (c) => {
  const comfy = new ComfyClient(comfyConnection(c.env));
  try {
    const stats = await comfy.systemStats({ timeoutMs: 3_000 });
    const system = (stats.system ?? {}) as Record<string, unknown>;
    return c.json({ ok: true, version: VERSION, comfyui: { reachable: true, version: system.comfyui_version ?? null } });
  } catch (error) {
    return c.json({ ok: true, version: VERSION, comfyui: { reachable: false, error: error instanceof Error ? error.message : String(error) } });
  }
});

/** Full-size downloads behind signed, expiring URLs (tool results carry them). */
app.on(["GET", "HEAD"], "/assets/:id", async (c) => {
  const id = c.req.param("id");
  const check = await verifyDownload(c.env, id, new URL(c.req.url).searchParams);
  if (!check.ok) return c.json({ error: "forbidden", message: check.message }, check.status);
  const studio = c.env.STUDIO.get(c.env.STUDIO.idFromName(check.principal));
  const asset = await studio.getAsset(id);
  if (!asset) return c.json({ error: "not_found", message: `Asset ${id} no longer exists (assets are kept ASSET_TTL_HOURS).` }, 404);
  return streamAsset(new ComfyClient(comfyConnection(c.env)), asset, c.req.raw);
});

/**
 * Published files, when no PUBLIC_BASE_URL (custom domain or public bucket) serves them: they are
 * public by intent, so no signature; only keys under the publish prefix are reachable.
 */
app.on(["GET", "HEAD"], "/published/*", async (c) => {
  const config = publishConfig(c.env, readConfig(c.env).publicUrl);
  const key = decodeURIComponent(new URL(c.req.url).pathname.slice("/published/".length));
  if (!config.bucket || !key.startsWith(config.prefix) || key.includes("..")) return c.json({ error: "not_found", message: "No such published file." }, 404);
  const object = await config.bucket.get(key);
  if (!object) return c.json({ error: "not_found", message: `Nothing is published at ${key}.` }, 404);
  const headers = new Headers({ ETag: object.httpEtag, "X-Content-Type-Options": "nosniff" });
  object.writeHttpMetadata(headers);
  headers.set("Content-Length", String(object.size));
  return new Response(c.req.method === "HEAD" ? null : object.body, { headers });
});

app.all("/mcp", async (c) => {
  const config = readConfig(c.env);
  const url = new URL(c.req.url);
  const principal = config.allowUnauthenticatedLocal && LOOPBACK.has(url.hostname) ? "local" : undefined;
  if (!principal) {
    return c.json(
      {
        error: "authentication_not_configured",
        message:
          "This gateway has no authentication configured, so it refuses to serve MCP. Configure OAuth or MCP tokens " +
          "(see README, 'Authentication'), or run it locally with `npm start` (ALLOW_UNAUTHENTICATED_LOCAL=true on 127.0.0.1).",
      },
      503,
    );
  }
  const tools: ToolContext = {
    env: c.env,
    config,
    comfy: new ComfyClient(config.comfy),
    studio: c.env.STUDIO.get(c.env.STUDIO.idFromName(principal)),
    principal,
    session: sessionTag(c.req.raw.headers),
  };
  // DNS-rebinding protection: only our own hostname (and loopback names locally) in Host, and
  // only those as a browser Origin.
  const hostnames = [new URL(config.publicUrl).hostname, ...LOOPBACK];
  const handler = createMcpHandler(() => buildMcpServer(tools), { route: "/mcp", allowedHostnames: hostnames, allowedOriginHostnames: hostnames });
  return handler(c.req.raw, c.env, c.executionCtx as ExecutionContext);
});

/** A client-chosen label, bounded and printable; the stateless protocol has no session of its own. */
function sessionTag(headers: Headers): string | null {
  const tag = (headers.get("X-Session-Tag") ?? headers.get("Mcp-Session-Id") ?? "").trim();
  return /^[\x21-\x7e]{1,128}$/.test(tag) ? tag : null;
}

app.notFound((c) => c.json({ error: "not_found", message: `No route ${c.req.method} ${new URL(c.req.url).pathname}. MCP is served at /mcp.` }, 404));

app.onError((error, c) => {
  console.error("request failed:", error.message);
  return c.json({ error: "internal", message: "The gateway hit an unexpected error; retry, and check the gateway logs if it persists." }, 500);
});

export default app;
