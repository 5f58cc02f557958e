// The two MCP client generations every end-to-end test runs with: SDK v1 (negotiates the
// 2025-11-25 initialize era) and SDK v2 (speaks the stateless 2026-07-28 era).
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from "@modelcontextprotocol/client";
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as TransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

/**
 * @typedef {{ era: string, readResource: (uri: string) => Promise<any>, call: (name: string, args?: object, options?: { onprogress?: (p: any) => void, timeout?: number, signal?: AbortSignal }) => Promise<any>, listTools: () => Promise<any[]>, close: () => Promise<void> }} TestClient
 */

/** @returns {Promise<TestClient>} */
export async function connectV1(mcpUrl, headers = {}) {
  const client = new ClientV1({ name: "e2e-v1", version: "1.0.0" });
  await client.connect(new TransportV1(new URL(mcpUrl), { requestInit: { headers } }));
  return {
    era: "2025-11-25 (SDK v1)",
    call: (name, args = {}, options = {}) =>
      client.callTool({ name, arguments: args }, undefined, { timeout: 90_000, ...options }),
    listTools: async () => (await client.listTools()).tools,
    readResource: (uri) => client.readResource({ uri }),
    listResources: () => client.listResources(),
    close: () => client.close(),
  };
}

/** @returns {Promise<TestClient>} */
export async function connectV2(mcpUrl, headers = {}) {
  const client = new ClientV2({ name: "e2e-v2", version: "1.0.0" }, { versionNegotiation: { mode: "auto" } });
  await client.connect(new TransportV2(new URL(mcpUrl), { requestInit: { headers } }));
  return {
    era: "2026-07-28 (SDK v2)",
    call: (name, args = {}, options = {}) =>
      client.callTool({ name, arguments: args }, { timeout: 90_000, ...options }),
    listTools: async () => (await client.listTools()).tools,
    readResource: (uri) => client.readResource({ uri }),
    listResources: () => client.listResources(),
    close: () => client.close(),
  };
}

export const CLIENTS = [
  ["SDK v1 client", connectV1],
  ["SDK v2 client", connectV2],
];
