/**
 * Which browser pages may drive MCP: the Origin must be exactly PUBLIC_URL's origin (scheme, host
 * and port), or in loopback mode this gateway's own loopback origin. Matching the hostname alone
 * let a page on any other localhost port (a dev server, a local app) call every tool.
 */
import { readConfig } from "../config";
import { type LoopbackVerdict, loopbackMode } from "./loopback";

/** The origins allowed to send this request, as serialised origins (`https://host[:port]`). */
export function allowedOrigins(
  request: Request,
  env: Env,
  local: LoopbackVerdict = loopbackMode(request, env),
): ReadonlySet<string> {
  const own = new URL(readConfig(env).publicUrl).origin;
  return new Set([own, ...(local.local ? local.origins : [])]);
}

/**
 * A 403 for a browser request from a foreign page, or undefined. Requests without Origin pass:
 * CLIs, SDKs and server-side agents send none, and only a browser can be made to send a request
 * on a page's behalf.
 */
export function foreignOrigin(request: Request, allowed: ReadonlySet<string>): Response | undefined {
  const origin = request.headers.get("Origin");
  if (origin === null || origin === "") return undefined;
  if (allowed.has(serialised(origin))) return undefined;
  return Response.json(
    {
      jsonrpc: "2.0",
      error: {
        code: -32000,
        message: `Forbidden: browser requests are accepted only from ${[...allowed].join(", ")} (PUBLIC_URL), not from Origin ${origin.slice(0, 200)}.`,
      },
      id: null,
    },
    { status: 403 },
  );
}

/** The Origin as a browser serialises it; an opaque origin ("null") or garbage matches nothing. */
function serialised(origin: string): string {
  try {
    return new URL(origin).origin;
  } catch {
    return "";
  }
}
