// The studio view as a web page (issue #15): GET /studio and POST /studio/mcp inside workerd. Who
// may see it (loopback mode, the signed-in owner, nobody else), its CSP against the document's own
// inline script and style, and the CSRF and method rules of the endpoint its tool calls go to.
// Requests without loopback mode go through the Worker entry with another env (no
// ALLOW_UNAUTHENTICATED_LOCAL, with or without OWNER_PASSWORD), as a deployment runs it.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sessionCookie } from "../../src/auth/owner";
import worker from "../../src/index";
import { VIEW_HTML, VIEW_SCRIPT_HASH, VIEW_STYLE_HASH } from "../../src/view/bundle.generated";
import { rpc } from "../support/mcp-rpc";

const LOCAL = "http://127.0.0.1:8787";
const DEPLOYED = "https://comfy.example.com";
const ALL = ["generate", "publish", "admin"];

/** A deployment: no loopback mode, PUBLIC_URL on a public host; `extra` adds OWNER_PASSWORD and co. */
function deployedEnv(extra: Partial<Env> = {}): Env {
  return { ...env, ALLOW_UNAUTHENTICATED_LOCAL: undefined, PUBLIC_URL: DEPLOYED, ...extra } as Env;
}

const SIGN_IN_ON = { OWNER_PASSWORD: "correct horse battery" };

/** Through the Worker entry (OAuth provider in front when OWNER_PASSWORD is set), with `environment`. */
async function fetchWith(environment: Env, request: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(request, environment, ctx);
  // Read the body before the context ends, so waitOnExecutionContext sees the whole request.
  const settled = new Response(await response.arrayBuffer(), response);
  await waitOnExecutionContext(ctx);
  return settled;
}

/** The page's own tool call, as bridge.ts sends it; headers and body overridable. */
function toolCall(
  base: string,
  name: string,
  args: Record<string, unknown> = {},
  headers: Record<string, string> = {},
  body: string = JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name, arguments: args } }),
): Request {
  return new Request(`${base}/studio/mcp`, {
    method: "POST",
    headers: {
      Host: new URL(base).host,
      Origin: base,
      "Content-Type": "application/json",
      Accept: "application/json, text/event-stream",
      ...headers,
    },
    body,
  });
}

/** The JSON-RPC response of a JSON or SSE body. */
// biome-ignore lint/suspicious/noExplicitAny: JSON-RPC answers are checked field by field
async function readRpc(response: Response): Promise<any> {
  const text = await response.text();
  if (!(response.headers.get("Content-Type") ?? "").includes("text/event-stream")) return JSON.parse(text);
  return text
    .split("\n")
    .filter((line) => line.startsWith("data: "))
    .map((line) => JSON.parse(line.slice(6)))
    .find((message) => "result" in message || "error" in message);
}

async function sha256Source(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return `sha256-${btoa(String.fromCharCode(...new Uint8Array(digest)))}`;
}

/** The text of the document's one inline element of this tag (exactly one is expected). */
function inlineOnly(tag: "script" | "style"): string {
  const found = [...VIEW_HTML.matchAll(new RegExp(`<${tag}\\b[^>]*>([\\s\\S]*?)</${tag}>`, "g"))];
  expect(found, `<${tag}> elements in the view`).toHaveLength(1);
  return found[0]?.[1] ?? "";
}

const EXPECTED_CSP =
  `default-src 'none'; script-src '${VIEW_SCRIPT_HASH}'; style-src '${VIEW_STYLE_HASH}'; ` +
  "img-src 'self'; media-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

describe("GET /studio", () => {
  it("serves the view in loopback mode with a strict CSP whose hashes are the document's own script and style", async () => {
    const response = await exports.default.fetch(new Request(`${LOCAL}/studio`));
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toBe("text/html; charset=utf-8");
    expect(await response.text()).toBe(VIEW_HTML);
    expect(response.headers.get("Content-Security-Policy")).toBe(EXPECTED_CSP);
    expect(await sha256Source(inlineOnly("script"))).toBe(VIEW_SCRIPT_HASH);
    expect(await sha256Source(inlineOnly("style"))).toBe(VIEW_STYLE_HASH);
    expect(response.headers.get("X-Content-Type-Options")).toBe("nosniff");
    expect(response.headers.get("Referrer-Policy")).toBe("no-referrer");
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    expect(response.headers.get("X-Frame-Options")).toBe("DENY");
    // Nothing from elsewhere: no external script, style, image or font in the document.
    expect(VIEW_HTML).not.toMatch(/\b(src|href)\s*=\s*["']?(https?:)?\/\//i);
  });

  it("lets media come from PUBLIC_URL and PUBLIC_BASE_URL when they are other origins, and nothing else", async () => {
    const response = await fetchWith(
      deployedEnv({ ...SIGN_IN_ON, PUBLIC_BASE_URL: "https://media.example.net/site" }),
      new Request("https://comfy-gateway.workers.dev/studio", {
        headers: { Cookie: await ownerCookie(deployedEnv(SIGN_IN_ON)) },
      }),
    );
    expect(response.status).toBe(200);
    const csp = response.headers.get("Content-Security-Policy") ?? "";
    expect(csp).toContain(`img-src 'self' ${DEPLOYED} https://media.example.net;`);
    expect(csp).toContain(`media-src 'self' ${DEPLOYED} https://media.example.net;`);
    expect(csp).toContain("connect-src 'self';");
  });

  it("asks to sign in (back to /studio) when sign-in is on and there is no session", async () => {
    const response = await fetchWith(deployedEnv(SIGN_IN_ON), new Request(`${DEPLOYED}/studio`));
    expect(response.status).toBe(200);
    const page = await response.text();
    expect(page).toMatch(/<form method="post" action="\/login">/);
    expect(page).toContain('name="next" value="/studio"');
    expect(page).not.toContain('data-testid="studio"');
  });

  it("asks to sign in in loopback mode too once OWNER_PASSWORD is set, as /mcp then wants OAuth", async () => {
    const response = await fetchWith({ ...env, ...SIGN_IN_ON } as Env, new Request(`${LOCAL}/studio`));
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('name="next" value="/studio"');
    const call = await fetchWith({ ...env, ...SIGN_IN_ON } as Env, toolCall(LOCAL, "list_assets"));
    expect(call.status).toBe(401);
  });

  it("serves the owner signed in through the sign-in session", async () => {
    const environment = deployedEnv(SIGN_IN_ON);
    const response = await fetchWith(
      environment,
      new Request(`${DEPLOYED}/studio`, { headers: { Cookie: await ownerCookie(environment) } }),
    );
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(VIEW_HTML);
    expect(response.headers.get("Content-Security-Policy")).toBe(EXPECTED_CSP);
  });

  it("refuses a session cookie signed under another password", async () => {
    const cookie = await ownerCookie(deployedEnv({ OWNER_PASSWORD: "an old password" }));
    const response = await fetchWith(
      deployedEnv(SIGN_IN_ON),
      new Request(`${DEPLOYED}/studio`, { headers: { Cookie: cookie } }),
    );
    expect(await response.text()).toContain('action="/login"');
  });

  it("fails closed with a page saying why when sign-in is off and it is not loopback mode", async () => {
    const response = await fetchWith(deployedEnv(), new Request(`${DEPLOYED}/studio`));
    expect(response.status).toBe(403);
    expect(await response.text()).toContain("Sign-in is off");
    // A proxy on this machine in front of `npm start` is not loopback mode either.
    const proxied = await exports.default.fetch(
      new Request(`${LOCAL}/studio`, { headers: { "X-Forwarded-For": "203.0.113.9" } }),
    );
    expect(proxied.status).toBe(403);
    expect(await proxied.text()).not.toBe(VIEW_HTML);
  });
});

async function ownerCookie(environment: Env): Promise<string> {
  return (await sessionCookie(environment)).split(";")[0] ?? "";
}

describe("POST /studio/mcp", () => {
  it("runs the page's tools/call in loopback mode as the owner, whose studio /mcp serves to `npm start`", async () => {
    const made = await rpc("owner", ALL, "tools/call", {
      name: "generate_image",
      arguments: { prompt: "a studio page test", width: 64, height: 64, steps: 2 },
    });
    const assetId = made.result.structuredContent.asset_id;
    expect(assetId).toEqual(expect.any(String));
    const someoneElses = await rpc("someone-else", ALL, "tools/call", {
      name: "generate_image",
      arguments: { prompt: "not the owner's", width: 64, height: 64, steps: 2 },
    });
    const response = await exports.default.fetch(toolCall(LOCAL, "list_assets", { limit: 100 }));
    expect(response.status).toBe(200);
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    const listed = (await readRpc(response)).result.structuredContent.assets.map(
      (asset: { asset_id: string }) => asset.asset_id,
    );
    expect(listed).toContain(assetId);
    expect(listed).not.toContain(someoneElses.result.structuredContent.asset_id);
  });

  it("takes the loopback origins of this gateway's port (localhost as well as 127.0.0.1)", async () => {
    const response = await exports.default.fetch(toolCall("http://localhost:8787", "list_backends"));
    expect(response.status).toBe(200);
    expect((await readRpc(response)).result.structuredContent.backends).toEqual(expect.any(Array));
  });

  it("refuses a foreign, missing or opaque Origin, and any body type but JSON, with 403", async () => {
    const cases: [string, Record<string, string>][] = [
      ["another site", { Origin: "https://evil.example" }],
      ["another port of this machine", { Origin: "http://127.0.0.1:3000" }],
      ["https instead of http", { Origin: "https://127.0.0.1:8787" }],
      ["an opaque origin", { Origin: "null" }],
      ["a form post", { "Content-Type": "application/x-www-form-urlencoded" }],
      ["a text/plain post (no preflight)", { "Content-Type": "text/plain" }],
    ];
    for (const [what, headers] of cases) {
      const response = await exports.default.fetch(toolCall(LOCAL, "list_assets", {}, headers));
      expect(response.status, what).toBe(403);
      expect((await response.json()) as object, what).toMatchObject({ error: "forbidden" });
    }
    const request = toolCall(LOCAL, "list_assets");
    request.headers.delete("Origin");
    const response = await exports.default.fetch(request);
    expect(response.status, "no Origin").toBe(403);
    expect(((await response.json()) as { message: string }).message).toContain("without Origin");
  });

  it("accepts only tools/call: other methods, batches, notifications and garbage get a JSON-RPC error", async () => {
    const send = (body: string) => exports.default.fetch(toolCall(LOCAL, "", {}, {}, body));
    const cases: [string, string, number][] = [
      ["tools/list", JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }), -32601],
      [
        "initialize",
        JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "initialize",
          params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "x", version: "1" } },
        }),
        -32601,
      ],
      ["resources/read", JSON.stringify({ jsonrpc: "2.0", id: 1, method: "resources/read", params: {} }), -32601],
      ["a batch", JSON.stringify([{ jsonrpc: "2.0", id: 1, method: "tools/call", params: {} }]), -32600],
      ["a notification", JSON.stringify({ jsonrpc: "2.0", method: "tools/call", params: {} }), -32600],
      ["not JSON", "{", -32700],
    ];
    for (const [what, body, code] of cases) {
      const response = await send(body);
      expect(response.status, what).toBe(400);
      expect(((await response.json()) as { error: { code: number } }).error.code, what).toBe(code);
    }
  });

  it("bounds the body and answers other methods than POST with 405", async () => {
    const big = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name: "list_assets", arguments: { padding: "x".repeat(70_000) } },
    });
    const tooLarge = await exports.default.fetch(toolCall(LOCAL, "", {}, {}, big));
    expect(tooLarge.status).toBe(413);
    const get = await exports.default.fetch(new Request(`${LOCAL}/studio/mcp`));
    expect(get.status).toBe(405);
    expect(get.headers.get("Allow")).toBe("POST");
  });

  it("without loopback mode: 401 without a session, 403 with sign-in off, the owner's tools with a session", async () => {
    const signInOn = deployedEnv(SIGN_IN_ON);
    const noSession = await fetchWith(signInOn, toolCall(DEPLOYED, "list_assets"));
    expect(noSession.status).toBe(401);
    expect((await noSession.json()) as object).toMatchObject({
      error: "not_signed_in",
      message: expect.stringMatching(/reload/i),
    });

    const off = await fetchWith(deployedEnv(), toolCall(DEPLOYED, "list_assets"));
    expect(off.status).toBe(403);
    expect((await off.json()) as object).toMatchObject({ error: "sign_in_off" });

    const cookie = await ownerCookie(signInOn);
    const signedIn = await fetchWith(signInOn, toolCall(DEPLOYED, "list_assets", {}, { Cookie: cookie }));
    expect(signedIn.status).toBe(200);
    expect((await readRpc(signedIn)).result.structuredContent.assets).toEqual(expect.any(Array));

    // The loopback origin is not this deployment's own.
    const foreign = await fetchWith(
      signInOn,
      toolCall(DEPLOYED, "list_assets", {}, { Cookie: cookie, Origin: "http://127.0.0.1:8787" }),
    );
    expect(foreign.status).toBe(403);
  });
});
