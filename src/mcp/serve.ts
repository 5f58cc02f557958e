/**
 * Serves one MCP request for an authenticated identity: builds the tool context for the caller's
 * own studio and hands the request to the stateless SDK v2 handler, with Host/Origin limited to
 * our own hostnames (DNS-rebinding protection).
 */
import { createMcpHandler } from "agents/mcp/server";
import { ComfyClient } from "../comfy/client";
import { readConfig } from "../config";
import type { ToolContext } from "../tools/context";
import { buildMcpServer } from "./server";

export const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

export interface Identity {
  /** Keys the studio: one Durable Object per principal. */
  principal: string;
  /** OAuth scopes granted (generate, publish, admin); tokens and local development get all. */
  scopes: ReadonlySet<string>;
}

export function serveMcp(request: Request, env: Env, ctx: ExecutionContext, identity: Identity): Promise<Response> {
  const config = readConfig(env);
  const tools: ToolContext = {
    env,
    config,
    comfy: new ComfyClient(config.comfy),
    studio: env.STUDIO.get(env.STUDIO.idFromName(identity.principal)),
    principal: identity.principal,
    scopes: identity.scopes,
    session: sessionTag(request.headers),
  };
  const hostnames = [new URL(config.publicUrl).hostname, ...LOOPBACK];
  const handler = createMcpHandler(() => buildMcpServer(tools), {
    route: new URL(request.url).pathname,
    allowedHostnames: hostnames,
    allowedOriginHostnames: hostnames,
  });
  return handler(request, env, ctx);
}

/** A client-chosen label, bounded and printable; the stateless protocol has no session of its own. */
function sessionTag(headers: Headers): string | null {
  const tag = (headers.get("X-Session-Tag") ?? headers.get("Mcp-Session-Id") ?? "").trim();
  return /^[\x21-\x7e]{1,128}$/.test(tag) ? tag : null;
}
