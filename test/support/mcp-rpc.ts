// One MCP request through serveMcp inside workerd, as /mcp and /mcp-key call it once the caller is
// authenticated: a chosen identity (principal and scopes) and, when a test needs it, another env.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { serveMcp } from "../../src/mcp/serve";

const LOCAL = "http://127.0.0.1:8787";

/** One JSON-RPC call as `principal` with exactly these scopes; the answer's JSON-RPC message. */
export async function rpc(
  principal: string,
  scopes: string[],
  method: string,
  params: Record<string, unknown> = {},
  environment: Env = env,
) {
  const ctx = createExecutionContext();
  const response = await serveMcp(
    new Request(`${LOCAL}/mcp`, {
      method: "POST",
      headers: {
        Host: "127.0.0.1:8787",
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    }),
    environment,
    ctx,
    { principal, scopes: new Set(scopes) },
  );
  const answer = await rpcAnswer(response);
  await waitOnExecutionContext(ctx);
  return answer;
}

/** The JSON-RPC answer in a response, whether a JSON body or an SSE stream. */
// biome-ignore lint/suspicious/noExplicitAny: JSON-RPC answers are checked field by field
export async function rpcAnswer(response: Response): Promise<any> {
  const text = await response.text();
  const messages = (response.headers.get("Content-Type") ?? "").includes("text/event-stream")
    ? text
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => JSON.parse(line.slice(6)))
    : [JSON.parse(text)];
  return messages.find((message) => "result" in message || "error" in message);
}
