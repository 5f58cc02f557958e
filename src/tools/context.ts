/** What every tool gets: the caller's studio, a ComfyUI client and the configuration. */
import type { ComfyClient } from "../comfy/client";
import type { GatewayConfig } from "../config";
import type { Studio } from "../studio/studio";

export interface ToolContext {
  env: Env;
  config: GatewayConfig;
  comfy: ComfyClient;
  /** The authenticated principal's own studio; every job and asset lookup goes through it. */
  studio: DurableObjectStub<Studio>;
  principal: string;
  /**
   * The client's session or tag, when it sends one (`Mcp-Session-Id` or `X-Session-Tag`): assets
   * made in this request are tagged with it, and `list_assets(session_id="current")` filters by it.
   */
  session: string | null;
}
