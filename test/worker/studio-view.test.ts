// The studio view as an MCP App (issue #15): which tools name it, what resources/read returns, the
// budget it is held to, and that hosts without the extension get exactly the results they got.
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { VIEW_GZIP_BYTES, VIEW_HTML, VIEW_SCRIPT_HASH, VIEW_STYLE_HASH } from "../../src/view/bundle.generated";
import { rpc, rpcAnswer } from "../support/mcp-rpc";

const ALL = ["generate", "publish", "admin"];
const VIEW_URI = "ui://comfy/studio";
const WITH_VIEW = [
  "generate_image",
  "generate_song",
  "generate_video",
  "image_to_image",
  "run_workflow",
  "regenerate",
  "get_job",
  "list_assets",
];
const UI_EXTENSION = { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } };

/** A 2026-07-28 request, which carries the client's capabilities (with or without the UI extension). */
// biome-ignore lint/suspicious/noExplicitAny: JSON-RPC answers are checked field by field
async function modern(method: string, params: Record<string, unknown>, capabilities: object): Promise<any> {
  const name: Record<string, string> = typeof params.name === "string" ? { "Mcp-Name": params.name } : {};
  const meta = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": { name: "view-test", version: "1.0.0" },
    "io.modelcontextprotocol/clientCapabilities": capabilities,
  };
  const response = await exports.default.fetch(
    new Request("http://127.0.0.1:8787/mcp", {
      method: "POST",
      headers: {
        Host: "127.0.0.1:8787",
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
        ...name,
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: { ...params, _meta: meta } }),
    }),
  );
  return rpcAnswer(response);
}

async function gzipSize(text: string): Promise<number> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return (await new Response(stream).arrayBuffer()).byteLength;
}

describe("the studio view (MCP App)", () => {
  it("is named by the generation tools, run_workflow, regenerate, get_job and list_assets, and by no other", async () => {
    const { result } = await rpc("view-user", ALL, "tools/list");
    const named = result.tools
      .filter((tool: { _meta?: { ui?: { resourceUri?: string } } }) => tool._meta?.ui?.resourceUri === VIEW_URI)
      .map((tool: { name: string }) => tool.name);
    expect(named.sort()).toEqual([...WITH_VIEW].sort());
    const others = result.tools.filter((tool: { name: string }) => !WITH_VIEW.includes(tool.name));
    expect(others.every((tool: { _meta?: unknown }) => tool._meta === undefined)).toBe(true);
  });

  it("is listed as a resource and read as text/html;profile=mcp-app, with the gateway's origin for its media", async () => {
    const listed = await rpc("view-user", ALL, "resources/list");
    const entry = listed.result.resources.find((resource: { uri: string }) => resource.uri === VIEW_URI);
    expect(entry?.mimeType).toBe("text/html;profile=mcp-app");

    const { result } = await rpc("view-user", ALL, "resources/read", { uri: VIEW_URI });
    expect(result.contents).toHaveLength(1);
    const [content] = result.contents;
    expect(content.uri).toBe(VIEW_URI);
    expect(content.mimeType).toBe("text/html;profile=mcp-app");
    expect(content.text).toBe(VIEW_HTML);
    expect(content.text).toMatch(/^<!doctype html>/i);
    expect(content.text).toContain('data-testid="studio"');
    // Signed download URLs and /published/ files live on PUBLIC_URL; the host's frame CSP allows it.
    expect(content._meta.ui.csp.resourceDomains).toContain("http://127.0.0.1:8787");
  });

  it("is one self-contained document within its 60 KB gzip budget, whose inline script and style match their CSP hashes", async () => {
    expect(VIEW_GZIP_BYTES).toBe(await gzipSize(VIEW_HTML));
    expect(VIEW_GZIP_BYTES).toBeLessThanOrEqual(60 * 1024);
    const scripts = [...VIEW_HTML.matchAll(/<script>([\s\S]*?)<\/script>/g)];
    const styles = [...VIEW_HTML.matchAll(/<style>([\s\S]*?)<\/style>/g)];
    expect(scripts).toHaveLength(1);
    expect(styles).toHaveLength(1);
    const hash = async (text: string) =>
      `sha256-${btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)))))}`;
    expect(await hash(scripts[0]![1]!)).toBe(VIEW_SCRIPT_HASH);
    expect(await hash(styles[0]![1]!)).toBe(VIEW_STYLE_HASH);
    // Nothing else to fetch: no external script, stylesheet, font or image in the document itself.
    expect(VIEW_HTML).not.toMatch(/<script[^>]+src=|<link[^>]+href=|@import|url\(/i);
  });

  it("changes nothing for hosts without the extension: the same result, media as signed URLs, never base64", async () => {
    const args = { prompt: "a lighthouse at dusk", width: 64, height: 64, steps: 2, wait_seconds: 20 };
    const plain = await modern("tools/call", { name: "generate_image", arguments: args }, {});
    const withUi = await modern(
      "tools/call",
      { name: "generate_image", arguments: args },
      { extensions: UI_EXTENSION },
    );
    for (const answer of [plain, withUi]) {
      expect(answer.result.isError, JSON.stringify(answer)).toBeFalsy();
      expect(answer.result.structuredContent.status).toBe("completed");
      expect(answer.result.content.map((block: { type: string }) => block.type)).toEqual(["text", "resource_link"]);
      expect(answer.result.structuredContent.download_url ?? answer.result.structuredContent.asset_url).toMatch(
        /^http:\/\/127\.0\.0\.1:8787\/assets\/.+[?&]sig=/,
      );
      expect(JSON.stringify(answer.result)).not.toMatch(/"type":"image"|;base64,/);
    }
    const shape = (answer: { result: { structuredContent: Record<string, unknown> } }) =>
      Object.keys(answer.result.structuredContent).sort();
    expect(shape(withUi)).toEqual(shape(plain));
  });
});
