// The /mcp route inside workerd: both protocol eras on one stateless endpoint, Host/Origin policy,
// fail-closed without auth, and the tool surface every client sees (titles, annotations, schemas).
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

const LOCAL = "http://127.0.0.1:8787";

async function post(body: unknown, headers: Record<string, string> = {}, base = LOCAL) {
  const response = await exports.default.fetch(
    new Request(`${base}/mcp`, {
      method: "POST",
      headers: {
        Host: new URL(base).host,
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
        ...headers,
      },
      body: JSON.stringify(body),
    }),
  );
  return { response, json: await readRpc(response) };
}

/** A response may be JSON or an SSE stream; take the JSON-RPC message either way. */
// biome-ignore lint/suspicious/noExplicitAny: JSON-RPC answers are checked field by field by the tests
async function readRpc(response: Response): Promise<any> {
  const text = await response.text();
  if (!(response.headers.get("Content-Type") ?? "").includes("text/event-stream"))
    return text ? JSON.parse(text) : undefined;
  const data = text
    .split("\n")
    .filter((line) => line.startsWith("data: "))
    .map((line) => JSON.parse(line.slice(6)));
  return data.find((message) => "result" in message || "error" in message);
}

const MODERN_META = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientInfo": { name: "contract-test", version: "1.0.0" },
  "io.modelcontextprotocol/clientCapabilities": {},
};

function modern(method: string, params: Record<string, unknown> = {}) {
  // 2026-07-28 mirrors the method (and a tool call's name) in headers that must match the body.
  const name: Record<string, string> = typeof params.name === "string" ? { "Mcp-Name": params.name } : {};
  return post(
    { jsonrpc: "2.0", id: 1, method, params: { ...params, _meta: MODERN_META } },
    { "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method, ...name },
  );
}

describe("protocol eras", () => {
  it("answers a 2026-07-28 server/discover without a session", async () => {
    const { response, json } = await modern("server/discover");
    expect(response.status).toBe(200);
    expect(json.result.supportedVersions).toContain("2026-07-28");
    expect(response.headers.get("mcp-session-id")).toBeNull();
  });

  it("answers a 2025-era initialize statelessly, then tools/list without a session", async () => {
    const init = await post({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "legacy-test", version: "1" } },
    });
    expect(init.response.status).toBe(200);
    expect(init.json.result.protocolVersion).toBe("2025-11-25");
    expect(init.json.result.serverInfo.name).toBe("comfyui-mcp-edge");
    expect(init.response.headers.get("mcp-session-id")).toBeNull();
    const list = await post(
      { jsonrpc: "2.0", id: 2, method: "tools/list", params: {} },
      { "MCP-Protocol-Version": "2025-11-25" },
    );
    expect(list.json.result.tools.map((t: { name: string }) => t.name)).toContain("generate_image");
  });
});

describe("tool surface", () => {
  it("gives every tool a title, annotations, described inputs and an output schema", async () => {
    const { json } = await modern("tools/list");
    // biome-ignore lint/suspicious/noExplicitAny: tool entries are free-form JSON here
    const tools = json.result.tools as Array<Record<string, any>>;
    expect(tools.map((t) => t.name).sort()).toEqual([
      "add_workflow",
      "cancel_job",
      "generate_image",
      "generate_song",
      "generate_video",
      "get_asset_metadata",
      "get_defaults",
      "get_job",
      "get_publish_info",
      "get_queue_status",
      "image_to_image",
      "list_assets",
      "list_backends",
      "list_models",
      "list_published",
      "list_workflows",
      "publish_asset",
      "regenerate",
      "remove_workflow",
      "run_workflow",
      "set_defaults",
      "unpublish",
      "view_image",
    ]);
    for (const tool of tools) {
      expect(tool.title, tool.name).toBeTruthy();
      expect(tool.annotations, tool.name).toBeTruthy();
      // A tool that changes nothing says so; readOnlyHint false is the spec's default and left out.
      const reads = /^(list_|get_|view_image$)/.test(tool.name);
      expect(tool.annotations.readOnlyHint, tool.name).toBe(reads ? true : undefined);
      if (!reads) expect(typeof tool.annotations.destructiveHint, tool.name).toBe("boolean");
      expect(tool.outputSchema?.type, tool.name).toBe("object");
      for (const [name, property] of Object.entries(tool.inputSchema.properties ?? {})) {
        expect((property as { description?: string }).description, `${tool.name}.${name}`).toBeTruthy();
      }
    }
    const generate = tools.find((t) => t.name === "generate_image")!;
    expect(generate.inputSchema.required).toEqual(["prompt"]);
    expect(generate.inputSchema.properties.width.type).toBe("integer");
    expect(generate.inputSchema.properties.cfg.type).toBe("number");
  });

  it("keeps tools/list within its budget: <= 25,000 B of compact JSON, each workflow tool <= 2,000 B (issue #14)", async () => {
    // Every byte of tools/list goes into every agent's context on every turn (a size budget, not a timing).
    for (const era of ["2026-07-28", "2025-11-25"]) {
      const { json } =
        era === "2026-07-28"
          ? await modern("tools/list")
          : await post({ jsonrpc: "2.0", id: 1, method: "tools/list" }, { "MCP-Protocol-Version": era });
      const tools = json.result.tools as Array<{ name: string }>;
      expect(tools.length, era).toBe(23);
      expect(new TextEncoder().encode(JSON.stringify({ tools })).length, era).toBeLessThanOrEqual(25_000);
      for (const name of ["generate_image", "generate_song", "generate_video", "image_to_image"]) {
        const tool = tools.find((t) => t.name === name)!;
        expect(new TextEncoder().encode(JSON.stringify(tool)).length, `${era} ${name}`).toBeLessThanOrEqual(2_000);
      }
    }
  });

  it("returns validation failures as tool errors the model can act on (SEP-1303)", async () => {
    const { json } = await modern("tools/call", { name: "generate_image", arguments: { prompt: "x", width: "wide" } });
    expect(json.result.isError).toBe(true);
    expect(json.result.content[0].text).toMatch(/width/);
  });

  it("reports an argument a tool does not take instead of dropping it, with the nearest real one (issue #14)", async () => {
    const { json } = await modern("tools/call", {
      name: "generate_image",
      arguments: { prompt: "a fox", width: 64, height: 64, stepz: 3, wait_seconds: 20 },
    });
    expect(json.result.isError).toBeFalsy();
    const result = json.result.structuredContent;
    expect(result.ignored_arguments).toEqual({ stepz: "not an argument of generate_image; did you mean 'steps'?" });
    expect(result.params.steps).not.toBe(3);
    expect(JSON.parse(json.result.content[0].text)).toEqual(result);
    // A failing call says it too.
    const missing = await modern("tools/call", { name: "get_job", arguments: { prompt_id: "nope", wait: 5 } });
    expect(missing.json.result.isError).toBe(true);
    expect(missing.json.result.content[0].text).toMatch(/Ignored arguments: 'wait' \(not an argument of get_job\)/);
  });

  it("get_defaults shows what the workflows will use: generate_video's length and size, no 'duration' (issue #14)", async () => {
    const { json } = await modern("tools/call", { name: "get_defaults", arguments: {} });
    const defaults = json.result.structuredContent;
    expect(defaults.video).not.toHaveProperty("duration");
    expect(defaults.video).toMatchObject({ length: 33, width: 832, height: 480 });
    expect(defaults.sources.video).toMatchObject({ length: "workflow", width: "workflow" });
    const wrong = await modern("tools/call", { name: "set_defaults", arguments: { image: { stepz: 3 } } });
    expect(JSON.stringify(wrong.json.result)).toMatch(/'stepz' is not an image default/);
  });

  it("answers an unknown job id with a not-found error and a hint", async () => {
    const { json } = await modern("tools/call", { name: "get_job", arguments: { prompt_id: "nope" } });
    expect(json.result.isError).toBe(true);
    expect(json.result.content[0].text).toMatch(/No job 'nope'.*job_id/s);
  });
});

describe("edges", () => {
  it("refuses a foreign browser Origin with 403", async () => {
    const { response } = await post(
      { jsonrpc: "2.0", id: 1, method: "tools/list", params: {} },
      { Origin: "https://evil.example" },
    );
    expect(response.status).toBe(403);
  });

  it("fails closed on a non-loopback host while no authentication is configured", async () => {
    const { response, json } = await post(
      { jsonrpc: "2.0", id: 1, method: "tools/list", params: {} },
      {},
      "https://comfy-gateway.example.com",
    );
    expect(response.status).toBe(503);
    expect(json.error).toBe("authentication_not_configured");
  });

  it("reports version and ComfyUI reachability on /healthz", async () => {
    const response = await exports.default.fetch(new Request(`${LOCAL}/healthz`));
    const body = (await response.json()) as {
      ok: boolean;
      version: string;
      comfyui: { reachable: boolean; version: string };
    };
    expect(body).toMatchObject({ ok: true, comfyui: { reachable: true, version: "0.3.64" } });
    expect(body.version).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
