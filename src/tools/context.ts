/** What every tool gets: the caller's studio, the ComfyUI backends and the configuration. */
import type { GatewayConfig } from "../config";
import type { Backends } from "../pool/backends";
import { ToolFailure } from "../mcp/results";
import type { Studio } from "../studio/studio";

export interface ToolContext {
  env: Env;
  config: GatewayConfig;
  /** A client per ComfyUI backend, and the coordinator that routes jobs among them. */
  backends: Backends;
  /** The authenticated principal's own studio; every job and asset lookup goes through it. */
  studio: DurableObjectStub<Studio>;
  principal: string;
  /** OAuth scopes of the caller (tokens and local development have all). */
  scopes: ReadonlySet<string>;
  /**
   * The client's session or tag, when it sends one (`Mcp-Session-Id` or `X-Session-Tag`): assets
   * made in this request are tagged with it, and `list_assets(session_id="current")` filters by it.
   */
  session: string | null;
}

export type Scope = "generate" | "publish" | "admin";

/**
 * Every tool calls this first. Reading (assets, jobs, the queue, models, workflows, defaults,
 * backends) needs 'generate' like generating does; publishing needs 'publish'; changing defaults
 * needs 'admin'. A caller without the scope is refused with how to get it.
 */
export function requireScope(tools: ToolContext, scope: Scope): void {
  if (tools.scopes.has(scope)) return;
  throw new ToolFailure(missingScope(scope), { missing_scope: scope });
}

export function missingScope(scope: Scope, what = ""): string {
  return (
    `This connection was not granted the '${scope}' scope${what ? `, which ${what} needs` : ""}. ` +
    `Reconnect the app and allow '${scope}' on the consent page (a token in MCP_TOKENS needs '${scope}' among its scopes).`
  );
}
