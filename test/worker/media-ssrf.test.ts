// A media URL may not point the gateway at one of its own ComfyUI backends (issue #13, finding 7):
// the tools pass every configured backend (COMFYUI_BACKENDS), not only the job's, to the SSRF check.
// (The Pool Durable Object keeps its own configuration, the single backend "default"; only the tool side
// sees the second backend, which is what is checked here.)
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { expect, inject, it } from "vitest";
import { serveMcp } from "../../src/mcp/serve";

const fakeUrl = `http://127.0.0.1:${inject("comfyPort")}`;

it("image_to_image refuses an https media URL on another backend of the pool, naming it, before any fetch", async () => {
  const pool = JSON.stringify([
    { name: "default", url: fakeUrl },
    { name: "rented", url: "https://comfy-rented.example.com" },
  ]);
  const ctx = createExecutionContext();
  const response = await serveMcp(
    new Request("http://127.0.0.1:8787/mcp", {
      method: "POST",
      headers: {
        Host: "127.0.0.1:8787",
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: {
          name: "image_to_image",
          arguments: {
            prompt: "a cat",
            image: "https://comfy-rented.example.com/view?filename=secret.png&type=output",
          },
        },
      }),
    }),
    { ...env, COMFYUI_BACKENDS: pool } as Env,
    ctx,
    { principal: "owner", scopes: new Set(["generate"]) },
  );
  const body = await response.text();
  await waitOnExecutionContext(ctx);
  const message = JSON.parse(
    body
      .split("\n")
      .find((line) => line.startsWith("data: "))!
      .slice(6),
  );
  expect(message.result.isError).toBe(true);
  expect(message.result.content[0].text).toMatch(
    /comfy-rented\.example\.com is one of this gateway's ComfyUI backends, which is never fetched as a media URL/,
  );
});
