/**
 * Serves one MCP request for an authenticated identity: builds the tool context for the caller's
 * own studio and hands the request to the stateless SDK v2 handler. Browser origins must match
 * exactly (src/net/origin.ts) before the SDK sees the request; Host is limited to PUBLIC_URL's
 * hostname, plus the loopback names in loopback mode (DNS-rebinding protection).
 */
import { createMcpHandler } from "agents/mcp/server";
import { readConfig } from "../config";
import { LOOPBACK_HOSTNAMES, loopbackMode } from "../net/loopback";
import { allowedOrigins, foreignOrigin } from "../net/origin";
import { Backends } from "../pool/backends";
import type { ToolContext } from "../tools/context";
import { buildMcpServer } from "./server";

export interface Identity {
  /** Keys the studio: one Durable Object per principal. */
  principal: string;
  /** OAuth scopes granted (generate, publish, admin); tokens and local development get all. */
  scopes: ReadonlySet<string>;
}

export async function serveMcp(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  identity: Identity,
): Promise<Response> {
  // One loopback verdict per request, for the Origin check and the SDK's Host list alike.
  const local = loopbackMode(request, env);
  const origins = allowedOrigins(request, env, local);
  const refused = foreignOrigin(request, origins) ?? (await invalidParams(request));
  if (refused) return refused;
  const config = readConfig(env);
  // Fail closed: a pool half-understood would send jobs to machines the owner did not mean.
  if (config.backendError)
    return Response.json({ error: "misconfigured", message: config.backendError }, { status: 503 });
  const tools: ToolContext = {
    env,
    config,
    backends: new Backends(config, env),
    studio: env.STUDIO.get(env.STUDIO.idFromName(identity.principal)),
    principal: identity.principal,
    scopes: identity.scopes,
    session: sessionTag(request.headers),
  };
  const handler = createMcpHandler(() => buildMcpServer(tools), {
    route: new URL(request.url).pathname,
    allowedHostnames: [new URL(config.publicUrl).hostname, ...(local.local ? LOOPBACK_HOSTNAMES : [])],
    // The SDK compares hostnames only; the exact origin check above is the one that decides.
    allowedOriginHostnames: [...origins].map((origin) => new URL(origin).hostname),
  });
  return handler(request, env, ctx);
}

/**
 * The SDK answers malformed params of a few methods with -32603 (internal error) instead of
 * -32602; agents must be told it is their input. Checked on a clone, so the body stays intact.
 */
const PARAM_RULES: Record<string, (params: Record<string, unknown>) => string | undefined> = {
  initialize: (p) =>
    typeof p.protocolVersion !== "string"
      ? "params.protocolVersion must be a string"
      : typeof p.capabilities !== "object" || p.capabilities === null || Array.isArray(p.capabilities)
        ? "params.capabilities must be an object"
        : typeof p.clientInfo !== "object" ||
            p.clientInfo === null ||
            typeof (p.clientInfo as Record<string, unknown>).name !== "string" ||
            typeof (p.clientInfo as Record<string, unknown>).version !== "string"
          ? "params.clientInfo must be an object with string name and version"
          : undefined,
  "resources/read": (p) => (typeof p.uri !== "string" ? "params.uri must be a string" : undefined),
  "prompts/get": (p) => (typeof p.name !== "string" ? "params.name must be a string" : undefined),
  ...Object.fromEntries(
    ["tools/list", "resources/list", "resources/templates/list", "prompts/list"].map((method) => [
      method,
      (p: Record<string, unknown>) =>
        p.cursor !== undefined && typeof p.cursor !== "string" ? "params.cursor must be a string" : undefined,
    ]),
  ),
};

async function invalidParams(request: Request): Promise<Response | undefined> {
  if (request.method !== "POST" || !(request.headers.get("Content-Type") ?? "").includes("json")) return undefined;
  // The methods checked here carry small params; a big body is a tools/call (e.g. inline media),
  // which the SDK validates itself: don't parse megabytes twice.
  if (Number(request.headers.get("Content-Length") ?? "0") > 65_536) return undefined;
  let message: unknown;
  try {
    message = await request.clone().json();
  } catch {
    return undefined; // the SDK answers parse errors itself
  }
  if (typeof message !== "object" || message === null || Array.isArray(message)) return undefined;
  const { method, params, id } = message as { method?: unknown; params?: unknown; id?: unknown };
  // own properties only: a method named "__proto__" must not find Object.prototype
  const rule = typeof method === "string" && Object.hasOwn(PARAM_RULES, method) ? PARAM_RULES[method] : undefined;
  if (!rule || id === undefined) return undefined;
  // JSON-RPC params are optional: absent means {} (the v1 client lists tools without params).
  const given = params === undefined ? {} : params;
  const problem =
    typeof given !== "object" || given === null || Array.isArray(given)
      ? "params must be an object"
      : rule(given as Record<string, unknown>);
  if (!problem) return undefined;
  return Response.json({
    jsonrpc: "2.0",
    id,
    error: { code: -32602, message: `Invalid params for ${method}: ${problem}.` },
  });
}

/** A client-chosen label, bounded and printable; the stateless protocol has no session of its own. */
function sessionTag(headers: Headers): string | null {
  const tag = (headers.get("X-Session-Tag") ?? headers.get("Mcp-Session-Id") ?? "").trim();
  return /^[\x21-\x7e]{1,128}$/.test(tag) ? tag : null;
}
