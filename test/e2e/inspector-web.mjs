// Starts the MCP Inspector's web client (@modelcontextprotocol/inspector, a devDependency) as a
// child process for the MCP App test: a host nobody here wrote, driven in headless Chromium.
//
// How it is wired (read from clients/web/build/index.js of 2.12.0, then checked by running it):
// - One Node process serves the UI (CLIENT_PORT), the MCP Apps sandbox proxy page
//   (MCP_SANDBOX_PORT, a second origin, so an app is cross-origin to the Inspector) and the
//   "dedicated app origin" listener (MCP_APP_ORIGIN_PORT, used only by apps declaring
//   _meta.ui.domain). The ports are fixed by environment variables; CLIENT_PORT cannot be 0
//   (its origin allow-list is derived from it), so each is picked free beforehand.
// - The browser never talks to the MCP server: it sends JSON-RPC to the Inspector's own
//   /api/mcp/{connect,send,events} and the Node backend forwards it with Node's fetch
//   (StreamableHTTPClientTransport). So the gateway sees Host 127.0.0.1:<gateway port> and no
//   Origin header, exactly like the SDK clients of the other e2e suites.
// - /api/* needs `x-mcp-remote-auth: Bearer <token>`; the token is injected into the page's
//   index.html, so a browser that opens `url` is authenticated.
// - Two ways in: by default the launcher is given the gateway (`--transport http --server-url`),
//   which seeds a read-only server list with one card to connect with its switch. With
//   `seedServer: false` it starts with an empty, writable catalog (in a temporary HOME) and
//   `deepLink()` connects on load (?serverUrl=…&autoConnect=<token>), optionally opening an app
//   and running it; a deep link on a seeded (read-only) list fails with "Server list is read-only
//   for this session".
// - MCP_AUTO_OPEN_ENABLED=false: the launcher opens the system browser by default (its default
//   is off only when VITEST is set); the test drives its own headless Chromium instead.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { freePort } from "./gateway.mjs";

const require = createRequire(import.meta.url);
export const INSPECTOR_LAUNCHER = join(
  dirname(require.resolve("@modelcontextprotocol/inspector/package.json")),
  "clients/launcher/build/index.js",
);

/**
 * @param {{ mcpUrl: string, seedServer?: boolean, readyTimeoutMs?: number }} options
 * @returns {Promise<{ url: string, token: string, sandboxUrl: string, deepLink: (params?: Record<string, string>) => string, logs: () => string, stop: () => Promise<void> }>}
 */
export async function startInspectorWeb({ mcpUrl, seedServer = true, readyTimeoutMs = 30_000 }) {
  const [clientPort, sandboxPort, appOriginPort] = await distinctFreePorts(3);
  const token = randomBytes(24).toString("hex");
  // Its own HOME and storage: the Inspector keeps ~/.mcp-inspector (server list, OAuth state).
  const home = mkdtempSync(join(tmpdir(), "comfyui-mcp-edge-inspector-"));
  const env = {
    ...process.env,
    HOME: home,
    MCP_STORAGE_DIR: join(home, "storage"),
    HOST: "127.0.0.1",
    CLIENT_PORT: String(clientPort),
    MCP_SANDBOX_PORT: String(sandboxPort),
    MCP_APP_ORIGIN_PORT: String(appOriginPort),
    MCP_INSPECTOR_API_TOKEN: token,
    MCP_AUTO_OPEN_ENABLED: "false",
    // No OS keychain in CI; "memory" says so up front instead of a D-Bus error on every start.
    MCP_INSPECTOR_SECRET_STORE: "memory",
    NO_COLOR: "1",
  };
  // The backend routes its MCP requests through HTTP(S)_PROXY when set: the gateway is on loopback.
  for (const name of ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
    delete env[name];
  const server = seedServer ? ["--transport", "http", "--server-url", mcpUrl] : [];
  const child = spawn(process.execPath, [INSPECTOR_LAUNCHER, "--web", ...server], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  let exited = false;
  const gone = new Promise((resolve) =>
    child.once("exit", () => {
      exited = true;
      resolve();
    }),
  );

  const url = `http://127.0.0.1:${clientPort}`;
  const stop = async () => {
    if (!exited) {
      signal(child, "SIGTERM");
      const late = setTimeout(() => signal(child, "SIGKILL"), 3_000);
      await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      clearTimeout(late);
    }
    rmSync(home, { recursive: true, force: true });
  };

  // Ready = the banner is out (printed once the UI, sandbox and app-origin listeners all listen)
  // and the API answers the token with the sandbox's URL (the sandbox falls back to another port
  // if its own is taken, so the URL is read rather than assumed).
  const deadline = Date.now() + readyTimeoutMs;
  let sandboxUrl;
  while (sandboxUrl === undefined) {
    if (exited) {
      await stop();
      throw new Error(`the MCP Inspector web client exited before it was ready:\n${output}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the MCP Inspector web client was not ready after ${readyTimeoutMs} ms:\n${output}`);
    }
    if (/up and running/.test(output)) {
      const config = await fetch(`${url}/api/config`, {
        headers: { "x-mcp-remote-auth": `Bearer ${token}` },
        signal: AbortSignal.timeout(2_000),
      })
        .then((response) => (response.ok ? response.json() : undefined))
        .catch(() => undefined);
      if (config) sandboxUrl = config.sandboxUrl ?? "";
    }
    if (sandboxUrl === undefined) await new Promise((resolve) => setTimeout(resolve, 150));
  }
  if (!sandboxUrl) {
    await stop();
    throw new Error(`the MCP Inspector started without its MCP Apps sandbox, so it cannot render apps:\n${output}`);
  }

  return {
    url,
    token,
    sandboxUrl,
    /**
     * The UI URL that connects to `mcpUrl` on load (the Inspector's deep link, for `seedServer:
     * false`; `autoConnect` must be the API token). Extra params: `openApp` (a tool name: opens it
     * in the Apps tab), `appArgs` (base64url JSON of its arguments), `autoOpen` (= the token: runs
     * it at once).
     */
    deepLink: (params = {}) => {
      const link = new URL(url);
      link.searchParams.set("serverUrl", mcpUrl);
      link.searchParams.set("transport", "http");
      link.searchParams.set("autoConnect", token);
      for (const [key, value] of Object.entries(params)) link.searchParams.set(key, value);
      return link.href;
    },
    logs: () => output,
    stop,
  };
}

/** `count` different free ports (freePort() may hand the same one out twice in a row). */
async function distinctFreePorts(count) {
  const ports = new Set();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

function signal(child, name) {
  try {
    process.kill(-child.pid, name);
  } catch {
    // already gone
  }
}
