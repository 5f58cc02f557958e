/**
 * Static bearer tokens on /mcp-key (CLIs and IDEs): who the caller is and what its token may do,
 * or the refusal to send. Every presented token goes through the Guard, which counts it before
 * comparing: a burst of guesses from one address, one IPv6 /64 or everywhere is cut off, and a
 * throttled address is refused even with a right token until Retry-After has passed.
 */
import type { Identity } from "../mcp/serve";
import { type Throttled, type TokenVerdict, guardOf } from "./guard";
import { clientAddress } from "./owner";

export async function tokenIdentity(env: Env, request: Request): Promise<Identity | Response> {
  if (!env.MCP_TOKENS) return unauthorized(503, "No MCP_TOKENS are configured on this gateway.");
  const authorization = request.headers.get("Authorization");
  // No credential is no guess: it is not counted.
  if (!authorization) return unauthorized(401, "Send Authorization: Bearer <one of the MCP_TOKENS>.");
  let verdict: TokenVerdict;
  try {
    verdict = await guardOf(env).token(clientAddress(request), authorization);
  } catch {
    return unauthorized(503, "The gateway could not check the token just now; retry in a few seconds.");
  }
  if (verdict.status === "ok") return { principal: verdict.user, scopes: new Set(verdict.scopes) };
  if (verdict.status === "throttled") return throttled(verdict);
  return unauthorized(401, "Send Authorization: Bearer <one of the MCP_TOKENS>.");
}

function unauthorized(status: 401 | 503, message: string): Response {
  return Response.json({ error: "unauthorized", message }, { status });
}

function throttled(verdict: Throttled): Response {
  const from = { address: "your address", network: "your network (IPv6 /64)", everyone: "all clients" }[verdict.who];
  return Response.json(
    {
      error: "too_many_attempts",
      message:
        `Too many wrong tokens from ${from}: no token is checked for ${verdict.retryAfterSeconds} s (Retry-After). ` +
        "Check that your client sends one of the MCP_TOKENS, then retry after that time.",
      retry_after_seconds: verdict.retryAfterSeconds,
    },
    { status: 429, headers: { "Retry-After": String(verdict.retryAfterSeconds) } },
  );
}
