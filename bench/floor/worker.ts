/**
 * The floor for bench/tool-surface: the least a Worker can do to answer MCP with the same stack
 * (agents' createMcpHandler, SDK v2 McpServer, zod v4) under the same `wrangler dev`: one tool with
 * a constant answer, no Durable Object, no R2, no configuration. Whatever our gateway costs above
 * this is ours to explain.
 */
import { McpServer } from "@modelcontextprotocol/server";
import { createMcpHandler } from "agents/mcp/server";
import * as z from "zod/v4";

function buildServer(): McpServer {
  const server = new McpServer({ name: "floor", version: "1.0.0" });
  server.registerTool(
    "constant",
    {
      title: "Constant",
      description: "Returns a constant.",
      inputSchema: z.object({}),
      outputSchema: z.object({ value: z.string() }),
      annotations: { readOnlyHint: true },
    },
    async () => ({ content: [{ type: "text", text: '{"value":"ok"}' }], structuredContent: { value: "ok" } }),
  );
  return server;
}

export default {
  fetch(request: Request, env: unknown, ctx: ExecutionContext): Promise<Response> {
    // The benchmark starts it with the gateway's launcher, which waits for /healthz.
    if (new URL(request.url).pathname === "/healthz") return Promise.resolve(Response.json({ ok: true }));
    return createMcpHandler(buildServer, { route: "/mcp" })(request, env, ctx);
  },
};
