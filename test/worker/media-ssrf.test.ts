// A media URL may not point the gateway at one of its own ComfyUI backends (issue #13, finding 7):
// the tools pass every configured backend (COMFYUI_BACKENDS), not only the job's, to the SSRF check.
// (The Pool Durable Object keeps its own configuration, the single backend "default"; only the tool side
// sees the second backend, which is what is checked here.)
import { env } from "cloudflare:test";
import { expect, inject, it } from "vitest";
import { rpc } from "../support/mcp-rpc";

const fakeUrl = `http://127.0.0.1:${inject("comfyPort")}`;

it("image_to_image refuses an https media URL on another backend of the pool, naming it, before any fetch", async () => {
  const pool = JSON.stringify([
    { name: "default", url: fakeUrl },
    { name: "rented", url: "https://comfy-rented.example.com" },
  ]);
  const message = await rpc(
    "owner",
    ["generate"],
    "tools/call",
    {
      name: "image_to_image",
      arguments: { prompt: "a cat", image: "https://comfy-rented.example.com/view?filename=secret.png&type=output" },
    },
    { ...env, COMFYUI_BACKENDS: pool } as Env,
  );
  expect(message.result.isError).toBe(true);
  expect(message.result.content[0].text).toMatch(
    /comfy-rented\.example\.com is one of this gateway's ComfyUI backends, which is never fetched as a media URL/,
  );
});
