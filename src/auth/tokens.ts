/** Static bearer tokens on /mcp-key (CLIs and IDEs): who the caller is, or the refusal to send. */
import type { Identity } from "../mcp/serve";
import { tokenUser } from "./owner";
import { SCOPES } from "./routes";

const ALL_SCOPES: ReadonlySet<string> = new Set(SCOPES);

export async function tokenIdentity(env: Env, request: Request): Promise<Identity | Response> {
  const user = await tokenUser(env, request.headers.get("Authorization"));
  if (user) return { principal: user, scopes: ALL_SCOPES };
  const configured = Boolean(env.MCP_TOKENS);
  return Response.json(
    {
      error: "unauthorized",
      message: configured
        ? "Send Authorization: Bearer <one of the MCP_TOKENS>."
        : "No MCP_TOKENS are configured on this gateway.",
    },
    { status: configured ? 401 : 503 },
  );
}
