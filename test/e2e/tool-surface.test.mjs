// The tool surface as other clients see it (issue #14): the MCP Inspector's strict schema check
// (the portability problems of single-type dialects such as Gemini's) finds nothing, and with
// COMFY_MCP_WORKFLOW_TOOLS=none a big library costs no per-workflow tools while every workflow
// stays reachable through run_workflow.
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { CLIENTS } from "./clients.mjs";
import { startGateway } from "./gateway.mjs";

const require = createRequire(import.meta.url);
const INSPECTOR = join(
  dirname(require.resolve("@modelcontextprotocol/inspector/package.json")),
  "clients/launcher/build/index.js",
);

let fake;
beforeAll(async () => {
  fake = await startFakeComfy({ port: 0, stepDelayMs: 1 });
});
afterAll(async () => {
  await fake?.close();
});

describe("mcp-inspector --cli --method tools/list --strict", () => {
  let gateway;
  beforeAll(async () => {
    gateway = await startGateway({ comfyUrl: fake.url });
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it("reports no portability warning or error for any tool (exit 0, nothing on stderr)", async () => {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [INSPECTOR, "--cli", gateway.mcpUrl, "--transport", "http", "--method", "tools/list", "--strict"],
      { timeout: 60_000, env: { ...process.env, NO_COLOR: "1" } },
    );
    // It really listed our tools…
    const names = JSON.parse(stdout).tools.map((tool) => tool.name);
    expect(names).toContain("generate_image");
    expect(names).toHaveLength(23);
    // …and found nothing to say about them (it prints each problem, and a count, on stderr).
    expect(stderr).not.toMatch(/Warning|Error|warnings|errors/);
    expect(stderr.trim()).toBe("");
  });
});

describe("COMFY_MCP_WORKFLOW_TOOLS=none", () => {
  let gateway;
  beforeAll(async () => {
    gateway = await startGateway({ comfyUrl: fake.url, vars: { COMFY_MCP_WORKFLOW_TOOLS: "none" } });
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it.each(CLIENTS)(
    "%s: no per-workflow tools; list_workflows and run_workflow reach every workflow",
    async (_label, connect) => {
      const client = await connect(gateway.mcpUrl);
      try {
        const names = (await client.listTools()).map((tool) => tool.name);
        expect(names).toHaveLength(19); // the 19 fixed tools (src/mcp/server.ts FIXED_TOOLS)
        for (const name of ["generate_image", "generate_song", "generate_video", "image_to_image"])
          expect(names).not.toContain(name);
        const listed = (await client.call("list_workflows")).structuredContent;
        expect(listed.workflows.map((w) => [w.id, w.tool])).toContainEqual(["generate_image", null]);
        const run = await client.call("run_workflow", {
          workflow_id: "generate_image",
          overrides: { prompt: "a fox", width: 64, height: 64, steps: 2 },
          wait_seconds: 30,
        });
        expect(run.isError).toBeFalsy();
        expect(run.structuredContent).toMatchObject({ status: "completed", tool: "run_workflow" });
      } finally {
        await client.close();
      }
    },
  );
});
