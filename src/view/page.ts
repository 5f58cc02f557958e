/**
 * The studio view as a web page (issue #15): GET /studio serves the same document MCP hosts show
 * in a frame, and POST /studio/mcp carries its tool calls. Both are for the owner only: this
 * machine in loopback mode without OWNER_PASSWORD (the owner's studio, which `npm start`'s MCP
 * clients use, so the page shows what they made), or the owner signed in with the OAuth sign-in
 * session. Everything else fails closed.
 *
 * The session is a cookie, so /studio/mcp is exposed to cross-site requests in a way a bearer
 * token is not: it takes only `Content-Type: application/json` (a cross-site form cannot send it,
 * and a cross-site fetch with it needs a CORS preflight nobody answers) from exactly this
 * gateway's own Origin, and only `tools/call`. The call then goes through serveMcp, so scopes,
 * limits and the per-user studio are exactly MCP's.
 */
import type { Hono } from "hono";
import { SCOPES } from "../auth/credentials";
import { OWNER, ownerSession } from "../auth/owner";
import { html, messagePage, signInPage } from "../auth/pages";
import { readConfig } from "../config";
import { type Identity, serveMcp } from "../mcp/serve";
import { loopbackMode } from "../net/loopback";
import { readBounded } from "../net/bounded-body";
import { allowedOrigins } from "../net/origin";
import { VIEW_HTML, VIEW_SCRIPT_HASH, VIEW_STYLE_HASH } from "./bundle.generated";
import { mediaOrigins } from "./resource";

export const STUDIO_PATH = "/studio";
export const STUDIO_MCP_PATH = "/studio/mcp";

/** The page's tool calls carry a prompt at most; inline media goes through MCP clients, not here. */
export const MAX_STUDIO_CALL_BYTES = 65_536;

/** Who the page serves: the owner with every scope, as /mcp serves `npm start` and OAuth's owner. */
const OWNER_IDENTITY: Identity = { principal: OWNER, scopes: new Set(SCOPES) };

export function registerStudioPage(app: Hono<{ Bindings: Env }>): void {
  app.get(STUDIO_PATH, async (c) => {
    const visitor = await studioVisitor(c.req.raw, c.env);
    if (visitor === "signed-out") return signInPage(STUDIO_PATH);
    if (visitor === "sign-in-off") return signInOffPage();
    if (visitor === "unavailable") return html(messagePage("Try again", UNAVAILABLE_MESSAGE), 503);
    return new Response(VIEW_HTML, { headers: pageHeaders(c.req.raw, c.env) });
  });

  app.all(STUDIO_MCP_PATH, async (c) => {
    if (c.req.method !== "POST")
      return refuse(405, "method_not_allowed", "POST a JSON-RPC tools/call here; MCP clients connect to /mcp.", {
        Allow: "POST",
      });
    const request = c.req.raw;
    const forged = crossSiteRefusal(request, c.env);
    if (forged) return forged;
    const visitor = await studioVisitor(request, c.env);
    if (visitor === "signed-out")
      return refuse(401, "not_signed_in", "Your sign-in has ended (or never began): reload /studio and sign in.");
    if (visitor === "sign-in-off")
      return refuse(403, "sign_in_off", "This gateway has no OWNER_PASSWORD, so nobody can sign in to the studio.");
    if (visitor === "unavailable") return refuse(503, "unavailable", UNAVAILABLE_MESSAGE);
    const call = await readToolCall(request);
    if (call instanceof Response) return call;
    const response = await serveMcp(call, c.env, c.executionCtx as ExecutionContext, visitor);
    // Tool results name the owner's assets and signed URLs: no cache may keep them.
    const headers = new Headers(response.headers);
    headers.set("Cache-Control", "no-store");
    headers.set("X-Content-Type-Options", "nosniff");
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  });
}

// ---- who is asking ---------------------------------------------------------------------------

type Visitor = Identity | "signed-out" | "sign-in-off" | "unavailable";

const UNAVAILABLE_MESSAGE = "The gateway could not check your sign-in just now; retry in a few seconds.";

/**
 * The owner, or why not. Exactly when /mcp serves without authentication, so does the page: in
 * loopback mode while OWNER_PASSWORD is unset (once it is set, the OAuth provider takes /mcp, and
 * an owner who set a password expects to be asked for it here too).
 */
async function studioVisitor(request: Request, env: Env): Promise<Visitor> {
  if (!env.OWNER_PASSWORD) return loopbackMode(request, env).local ? OWNER_IDENTITY : "sign-in-off";
  try {
    return (await ownerSession(env, request)) ? OWNER_IDENTITY : "signed-out";
  } catch {
    // The Guard (which remembers signed-out sessions) did not answer: never a 500, never a guess.
    return "unavailable";
  }
}

const signInOffPage = () =>
  html(
    messagePage(
      "Sign-in is off",
      "This gateway has no OWNER_PASSWORD, so nobody can sign in to see the studio here. Set the OWNER_PASSWORD secret " +
        "(README, 'Deploying safely'), or open http://127.0.0.1:8787/studio on the machine that runs `npm start`.",
    ),
    403,
  );

// ---- the page --------------------------------------------------------------------------------

/**
 * The view's one inline script and one inline style by hash, media from this gateway (signed
 * downloads under /assets/, named by PUBLIC_URL) and from wherever published files are served,
 * requests to this origin only, and no framing, <base> or form posts.
 */
export function studioCsp(request: Request, env: Env): string {
  const config = readConfig(env);
  const self = new URL(request.url).origin;
  const others = mediaOrigins(env, config.publicUrl).filter((origin) => origin !== self);
  const media = ["'self'", ...others].join(" ");
  return [
    "default-src 'none'",
    `script-src '${VIEW_SCRIPT_HASH}'`,
    `style-src '${VIEW_STYLE_HASH}'`,
    `img-src ${media}`,
    `media-src ${media}`,
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
}

function pageHeaders(request: Request, env: Env): Headers {
  return new Headers({
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": studioCsp(request, env),
    // For browsers that predate frame-ancestors.
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    // The page is the same for everyone, but whether it is served depends on the session.
    "Cache-Control": "no-store",
  });
}

// ---- the page's tool calls -------------------------------------------------------------------

/**
 * A 403 unless the request is the page's own fetch: JSON, from exactly this gateway's origin (the
 * PUBLIC_URL origin, or in loopback mode its loopback origins). Unlike /mcp, a missing Origin is
 * refused too: browsers always send one on a POST, and only a browser carries the cookie.
 */
function crossSiteRefusal(request: Request, env: Env): Response | undefined {
  const mediaType = (request.headers.get("Content-Type") ?? "").split(";")[0]?.trim().toLowerCase();
  if (mediaType !== "application/json")
    return refuse(403, "forbidden", "The studio's endpoint takes only Content-Type: application/json.");
  const origin = request.headers.get("Origin") ?? "";
  const own = allowedOrigins(request, env);
  if (!own.has(serialisedOrigin(origin)))
    return refuse(
      403,
      "forbidden",
      `The studio's endpoint takes requests only from the studio page itself (Origin ${[...own].join(" or ")}), ` +
        `not from ${origin ? `Origin ${origin.slice(0, 200)}` : "a request without Origin"}.`,
    );
  return undefined;
}

function serialisedOrigin(origin: string): string {
  try {
    return new URL(origin).origin;
  } catch {
    return "";
  }
}

/**
 * The body, bounded and checked to be one JSON-RPC tools/call request, re-wrapped so serveMcp
 * (and the SDK behind it) reads it as if it had just arrived; else the JSON-RPC error to send.
 */
async function readToolCall(request: Request): Promise<Request | Response> {
  const read = await readBounded(request, MAX_STUDIO_CALL_BYTES);
  if (!read.ok) return tooLarge();
  const body = new TextDecoder().decode(read.bytes);
  let message: unknown;
  try {
    message = JSON.parse(body);
  } catch {
    return rpcError(null, -32700, "Parse error: the body is not JSON.");
  }
  if (typeof message !== "object" || message === null || Array.isArray(message))
    return rpcError(null, -32600, "Invalid request: send one JSON-RPC request object (no batches).");
  const { id, method } = message as { id?: unknown; method?: unknown };
  const rpcId = typeof id === "string" || typeof id === "number" ? id : null;
  if (rpcId === null) return rpcError(null, -32600, "Invalid request: a tools/call needs a string or number id.");
  if (method !== "tools/call")
    return rpcError(
      rpcId,
      -32601,
      `The studio's endpoint serves only tools/call, not ${typeof method === "string" ? method.slice(0, 100) : "this"}; MCP clients connect to /mcp.`,
    );
  const headers = new Headers(request.headers);
  headers.delete("Content-Length");
  return new Request(request.url, { method: "POST", headers, body });
}

const tooLarge = () =>
  refuse(413, "too_large", `A studio tool call is at most ${MAX_STUDIO_CALL_BYTES} bytes; MCP clients use /mcp.`);

function refuse(status: number, error: string, message: string, headers: Record<string, string> = {}): Response {
  return Response.json({ error, message }, { status, headers: { "Cache-Control": "no-store", ...headers } });
}

function rpcError(id: string | number | null, code: number, message: string): Response {
  return Response.json(
    { jsonrpc: "2.0", id, error: { code, message } },
    { status: 400, headers: { "Cache-Control": "no-store" } },
  );
}
