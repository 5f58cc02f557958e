// add_workflow's edges inside workerd (issue #16): the URL obeys the SSRF rules of every
// caller-aimed fetch (the operator's exact-origin allowance aside), an added id is never silently
// overwritten, bundled workflows cannot be replaced or removed, and the answer to an unknown
// format says what it is not. The end-to-end flows are in test/e2e/add-workflow.test.mjs.
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { forgetStoredWorkflows } from "../../src/workflows/registry";
import { rpc } from "../support/mcp-rpc";

const ADMIN = ["generate", "publish", "admin"];
const DEFAULT_SD15 = (await import("../fixtures/templates/default.json")).default;

async function add(args: Record<string, unknown>, environment: Env = env) {
  const answer = await rpc("owner", ADMIN, "tools/call", { name: "add_workflow", arguments: args }, environment);
  // biome-ignore lint/suspicious/noExplicitAny: JSON-RPC answers are checked field by field
  const result = answer.result as { isError?: boolean; content: { text: string }[]; structuredContent?: any };
  return { ...result, text: result.content[0]!.text };
}

afterEach(async () => {
  for (const key of ["workflows/unit_sd15.json", "workflows/unit_sd15.meta.json"]) await env.ASSETS_BUCKET.delete(key);
  forgetStoredWorkflows();
});

describe("add_workflow", () => {
  it("fetches only public https URLs: private hosts, http and the backend itself are refused before any fetch", async () => {
    const backend = new URL(env.COMFYUI_URL);
    for (const [url, refusal] of [
      ["https://127.0.0.1/flow.json", /private or local address/],
      ["https://169.254.169.254/latest/flow.json", /private or local address/],
      ["https://localhost/flow.json", /private or local address/],
      ["http://example.com/flow.json", /only https URLs/],
      [`https://${backend.host}/flow.json`, /private or local address|ComfyUI backends/],
    ] as const) {
      const result = await add({ url });
      expect(result.isError, url).toBe(true);
      expect(result.text, url).toMatch(refusal);
    }
  });

  it("fetches from an origin the operator names exactly in COMFY_MCP_FETCH_ALLOW_ORIGINS, and from no other", async () => {
    const served = `${env.COMFYUI_URL}/object_info/NoSuchNode`; // any JSON this machine serves over http
    const allowed = { ...env, COMFY_MCP_FETCH_ALLOW_ORIGINS: new URL(env.COMFYUI_URL).origin } as Env;
    const fetched = await add({ url: served }, allowed);
    // Fetched (the JSON is not a workflow): the refusal is about the content, not the address.
    expect(fetched.text).toMatch(/not a ComfyUI workflow/);
    const otherPort = { ...env, COMFY_MCP_FETCH_ALLOW_ORIGINS: "http://127.0.0.1:1" } as Env;
    expect((await add({ url: served }, otherPort)).text).toMatch(/only https URLs|private or local address/);
  });

  it("adds a UI-format template once; the same id again needs replace: true; a bundled id is refused", async () => {
    const first = await add({ workflow: DEFAULT_SD15, workflow_id: "unit_sd15" });
    expect(first.isError, first.text).toBeFalsy();
    expect(first.structuredContent).toMatchObject({ workflow_id: "unit_sd15", tool: "unit_sd15", format: "ui" });
    const names = first.structuredContent.parameters.map((p: { name: string }) => p.name).sort();
    expect(names).toEqual(
      [
        "cfg",
        "height",
        "model",
        "negative_prompt",
        "prompt",
        "sampler_name",
        "scheduler",
        "seed",
        "steps",
        "width",
      ].sort(),
    );
    // The seed stays random per call; the answer still says what the template had.
    expect(first.structuredContent.notes.join(" ")).toMatch(
      /seed is random on every call unless given \(the workflow had \d+\)/,
    );
    const listed = await rpc("owner", ADMIN, "tools/call", { name: "list_workflows", arguments: {} });
    const seed = listed.result.structuredContent.workflows
      .find((w: { id: string }) => w.id === "unit_sd15")
      .inputs.find((i: { name: string }) => i.name === "seed");
    expect(seed.default).toBeUndefined();
    const again = await add({ workflow: DEFAULT_SD15, workflow_id: "unit_sd15" });
    expect(again.isError).toBe(true);
    expect(again.text).toMatch(/already added; pass replace: true/);
    const replaced = await add({ workflow: DEFAULT_SD15, workflow_id: "unit_sd15", replace: true });
    expect(replaced.structuredContent).toMatchObject({ replaced: true });
    const bundled = await add({ workflow: DEFAULT_SD15, workflow_id: "generate_image", replace: true });
    expect(bundled.isError).toBe(true);
    expect(bundled.text).toMatch(/bundled workflow/);
  });

  it("says what a non-workflow is, and wants exactly one of workflow and url", async () => {
    expect((await add({ workflow: { hello: "world" } })).text).toMatch(/not a ComfyUI workflow/);
    expect((await add({ workflow: "{not json" })).text).toMatch(/not JSON/);
    expect((await add({})).text).toMatch(/either inline \('workflow'\) or by 'url'/);
    expect((await add({ workflow: DEFAULT_SD15, url: "https://example.com/x.json" })).text).toMatch(/not both/);
  });
});
