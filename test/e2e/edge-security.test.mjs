// The gateway's edge over a real `wrangler dev` (issue #13, findings 5, 6 and 8): loopback mode only
// as `npm start` runs it, never through a proxy or under another spelling of this machine; browser
// Origins matched exactly, port included; /healthz public as one word, detailed for token holders,
// cached. Two gateways: `local` runs like `npm start`, `deployed` only with what wrangler.toml gives
// (no ALLOW_UNAUTHENTICATED_LOCAL) behind PUBLIC_URL http://gateway.example.com, with MCP_TOKENS.
// (`wrangler dev` rewrites the scheme of an Origin naming its own host and port to http, so an
// https-vs-http Origin cannot be told apart here; test/worker/units.test.ts checks the scheme.)
import { readFileSync } from "node:fs";
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { startGateway } from "./gateway.mjs";

const TOKEN = "tok_edge_owner_1234567890abcdef";
const PUBLIC_HOST = "gateway.example.com";
const INITIALIZE = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "edge", version: "1.0.0" } },
});
const MCP_HEADERS = { "Content-Type": "application/json", Accept: "application/json, text/event-stream" };

let fake;
let stats;
let local;
let deployed;

beforeAll(async () => {
  fake = await startFakeComfy({ port: 0, stepDelayMs: 1, nodeDelayMs: 1 });
  stats = await startStatsBackend();
  [local, deployed] = await Promise.all([
    startGateway({ comfyUrl: fake.url }),
    startGateway({
      comfyUrl: fake.url,
      vars: {
        ALLOW_UNAUTHENTICATED_LOCAL: undefined,
        PUBLIC_URL: `http://${PUBLIC_HOST}`,
        MCP_TOKENS: `owner:${TOKEN}`,
        // One backend that answers (and counts /system_stats), one that never does.
        COMFYUI_BACKENDS: JSON.stringify([
          { name: "main", url: stats.url },
          { name: "spare", url: "http://127.0.0.1:9" },
        ]),
      },
    }),
  ]);
});

afterAll(async () => {
  await Promise.all([local?.stop(), deployed?.stop()]);
  await Promise.all([fake?.close(), stats?.close()]);
});

describe("loopback mode (finding 5)", () => {
  it("comes only from `npm start`: the start script passes it, wrangler.toml's [vars] never holds it", () => {
    const scripts = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).scripts;
    expect(scripts.start).toMatch(/wrangler dev .*--var ALLOW_UNAUTHENTICATED_LOCAL:true/);
    const toml = readFileSync(new URL("../../wrangler.toml", import.meta.url), "utf8");
    expect(toml).not.toMatch(/^\s*ALLOW_UNAUTHENTICATED_LOCAL\s*=/m);
    const production = toml.slice(toml.indexOf("[env.production]"));
    expect(production).toMatch(/^compatibility_flags = \[.*"global_fetch_strictly_public".*\]$/m);
  });

  it("serves MCP to this machine as `npm start` runs it (the control for the refusals below)", async () => {
    const answer = await post(local.mcpUrl);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatch(/"serverInfo"/);
  });

  it("behind a proxy that forwards the loopback Host with X-Forwarded-For / Forwarded / CF-Connecting-IP: 503, not MCP", async () => {
    for (const [header, value, reason] of [
      ["X-Forwarded-For", "203.0.113.7", /came through a proxy \(it carries x-forwarded-for\)/],
      ["Forwarded", "for=203.0.113.7;proto=https", /came through a proxy \(it carries forwarded\)/],
      ["X-Real-IP", "203.0.113.7", /came through a proxy \(it carries x-real-ip\)/],
      ["CF-Connecting-IP", "203.0.113.7", /came from another machine \(CF-Connecting-IP\)/],
    ]) {
      const answer = await post(local.mcpUrl, { [header]: value });
      expect(answer.status, header).toBe(503);
      const body = JSON.parse(answer.body);
      expect(body.error, header).toBe("authentication_not_configured");
      expect(body.message, header).toMatch(reason);
      expect(body.message, header).toMatch(/OWNER_PASSWORD.*MCP_TOKENS/s);
    }
  });

  it("answers only to 127.0.0.1, localhost and [::1] on the gateway's port, as the runtime normalises them", async () => {
    const port = local.port;
    const refused =
      /unauthenticated local mode does not apply \(the request's host .* is not 127\.0\.0\.1:\d+ or localhost:\d+ or \[::1\]:\d+\)/;
    for (const host of [
      "localhost",
      "127.0.0.1",
      `127.0.0.2:${port}`,
      `localhost.:${port}`,
      `[::ffff:7f00:1]:${port}`,
      `evil.example:${port}`,
    ]) {
      const answer = await raw(local.url, "/mcp", { Host: host });
      expect(answer.status, host).toBe(503);
      expect(JSON.parse(answer.body).message, host).toMatch(refused);
    }
    // Spellings the runtime turns into the loopback host itself are that host (the same machine).
    for (const host of [`localhost:${port}`, `LOCALHOST:${port}`, `127.1:${port}`]) {
      const answer = await raw(local.url, "/mcp", { Host: host });
      expect(answer.status, host).toBe(200);
    }
  });

  it("is off where only wrangler.toml speaks (a deployment): MCP refused with what to set", async () => {
    const answer = await post(`${deployed.url}/mcp`);
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toMatchObject({
      error: "authentication_not_configured",
      message: expect.stringMatching(/ALLOW_UNAUTHENTICATED_LOCAL is not set \(only `npm start` sets it\)/),
    });
  });
});

describe("browser Origins (finding 6)", () => {
  const forbidden = /^Forbidden: browser requests are accepted only from /;

  it("loopback mode: only this gateway's own loopback origin, port and scheme included", async () => {
    const port = local.port;
    for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
      const answer = await post(local.mcpUrl, { Origin: origin });
      expect(answer.status, origin).toBe(200);
    }
    for (const origin of [
      "http://localhost:3000",
      `http://127.0.0.1:${port + 1}`,
      "http://localhost",
      "null",
      "https://evil.example",
    ]) {
      const answer = await post(local.mcpUrl, { Origin: origin });
      expect(answer.status, origin).toBe(403);
      expect(JSON.parse(answer.body).error.message, origin).toMatch(forbidden);
    }
  });

  it("deployed: PUBLIC_URL's origin exactly; loopback origins are refused outside loopback mode", async () => {
    const send = (origin) =>
      raw(deployed.url, "/mcp-key", { Host: PUBLIC_HOST, Authorization: `Bearer ${TOKEN}`, Origin: origin });
    expect((await send(`http://${PUBLIC_HOST}`)).status).toBe(200);
    for (const origin of [
      `http://localhost:${deployed.port}`,
      `http://127.0.0.1:${deployed.port}`,
      "http://127.0.0.1:8787",
      `http://${PUBLIC_HOST}:8080`,
      `https://${PUBLIC_HOST}:8443`,
      `http://www.${PUBLIC_HOST}`,
    ]) {
      const answer = await send(origin);
      expect(answer.status, origin).toBe(403);
      expect(JSON.parse(answer.body).error.message, origin).toMatch(forbidden);
    }
  });
});

describe("/healthz (finding 8)", () => {
  it("publicly says only ok/degraded: no backend names, versions or errors", async () => {
    const answer = await fetch(`${deployed.url}/healthz`);
    expect(answer.status, "degraded is a 503 (issue #14)").toBe(503);
    expect(await answer.json()).toEqual({ ok: false, status: "degraded" });
    // The same through a proxy in front of `npm start`: a visitor is not this machine.
    const proxied = await fetch(`${local.url}/healthz`, { headers: { "X-Forwarded-For": "203.0.113.7" } });
    expect(await proxied.json()).toEqual({ ok: true, status: "ok" });
  });

  it("gives details to a valid MCP_TOKENS bearer (and only to a valid one)", async () => {
    const detailed = await (
      await fetch(`${deployed.url}/healthz`, { headers: { Authorization: `Bearer ${TOKEN}` } })
    ).json();
    expect(detailed).toMatchObject({
      ok: false,
      status: "degraded",
      version: expect.stringMatching(/^\d+\.\d+\.\d+$/),
      backends: [
        { name: "main", reachable: true, version: "0.3.64" },
        { name: "spare", reachable: false, error: expect.stringMatching(/not reachable/) },
      ],
    });
    const wrong = await (
      await fetch(`${deployed.url}/healthz`, { headers: { Authorization: "Bearer nope-nope-nope-nope" } })
    ).json();
    expect(wrong).toEqual({ ok: false, status: "degraded" });
    // Loopback mode is this machine: details, with ComfyUI's version.
    const localDetails = await (await fetch(`${local.url}/healthz`)).json();
    expect(localDetails).toMatchObject({ ok: true, status: "ok", comfyui: { reachable: true, version: "0.3.64" } });
  });

  it("is cached: a burst of public hits does not ask the backends each time", async () => {
    await fetch(`${deployed.url}/healthz`); // fills the cache if it was older than 10 s
    const before = stats.hits();
    const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`${deployed.url}/healthz`)));
    // The deployed gateway has a backend down: degraded, 503 (issue #14), every time from the cache.
    expect(answers.map((answer) => answer.status)).toEqual(Array(20).fill(503));
    expect(stats.hits() - before).toBe(0);
  });
});

/** POST initialize with fetch (Host is the URL's). */
async function post(url, headers = {}) {
  const response = await fetch(url, { method: "POST", headers: { ...MCP_HEADERS, ...headers }, body: INITIALIZE });
  return { status: response.status, body: await response.text() };
}

/** POST initialize with the Host header exactly as given (fetch does not let a caller choose it). */
function raw(base, path, headers) {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: hostname, port, path, method: "POST", headers: { ...MCP_HEADERS, ...headers } },
      (response) => {
        let body = "";
        response.on("data", (chunk) => (body += chunk));
        response.on("end", () => resolve({ status: response.statusCode, body }));
      },
    );
    request.on("error", reject);
    request.end(INITIALIZE);
  });
}

/** A backend that answers /system_stats like ComfyUI 0.3.64 and counts the calls; nothing else. */
async function startStatsBackend() {
  let count = 0;
  const server = http.createServer((req, res) => {
    if (req.url === "/system_stats") {
      count++;
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ system: { comfyui_version: "0.3.64" }, devices: [] }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    hits: () => count,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}
