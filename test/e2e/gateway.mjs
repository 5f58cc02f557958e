// Starts the real gateway (`wrangler dev`) as a child process for end-to-end tests, the CLI demo
// and benchmarks: its own port, inspector port and state directory, ComfyUI URL injected.
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * @param {{ comfyUrl: string, port?: number, persistDir?: string, vars?: Record<string, string | undefined>, readyTimeoutMs?: number, readyStatus?: number, config?: string }} options
 *   `config`: another wrangler configuration (bench/floor/wrangler.toml) instead of the gateway's.
 *   `vars`: extra `--var`s; loopback mode (ALLOW_UNAUTHENTICATED_LOCAL=true, as `npm start`) is on unless
 *   overridden, or left out with `ALLOW_UNAUTHENTICATED_LOCAL: undefined` (then only wrangler.toml speaks).
 *   `readyStatus`: the /healthz status that means "up" (503 for a gateway expected to refuse its configuration).
 * @returns {Promise<{ url: string, mcpUrl: string, port: number, persistDir: string, stop: () => Promise<void>, logs: () => string }>}
 */
export async function startGateway(options) {
  const port = options.port ?? (await freePort());
  const inspectorPort = await freePort();
  const ownsState = !options.persistDir;
  const persistDir = options.persistDir ?? mkdtempSync(join(tmpdir(), "comfyui-mcp-edge-state-"));
  const vars = {
    COMFYUI_URL: options.comfyUrl,
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    COMFY_MCP_RECONCILE_SECONDS: "1",
    // Loopback mode, as `npm start` passes it (never in wrangler.toml's [vars]); options.vars may override it.
    ALLOW_UNAUTHENTICATED_LOCAL: "true",
    ...options.vars,
  };
  const args = [
    "wrangler",
    "dev",
    ...(options.config ? ["-c", options.config] : []),
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--inspector-port",
    String(inspectorPort),
    "--persist-to",
    persistDir,
    "--show-interactive-dev-session=false",
    "--log-level",
    "warn",
    // A var given as undefined is left out (e.g. ALLOW_UNAUTHENTICATED_LOCAL, to run as deployed).
    ...Object.entries(vars)
      .filter(([, value]) => value !== undefined)
      .flatMap(([key, value]) => ["--var", `${key}:${value}`]),
  ];
  const child = spawn("npx", args, {
    cwd: root,
    env: {
      ...process.env,
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_SEND_METRICS: "false",
      CI: "true",
      NO_COLOR: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  let exited = false;
  child.once("exit", () => (exited = true));
  for (;;) {
    if (exited) throw new Error(`wrangler dev exited before it was ready:\n${output}`);
    if (Date.now() > deadline) {
      killTree(child);
      throw new Error(`wrangler dev not ready after ${options.readyTimeoutMs ?? 60_000} ms:\n${output}`);
    }
    try {
      const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) });
      const expected = options.readyStatus ?? 200;
      if (response.status === expected) break;
      // Up, with its ComfyUI down (a test that starts it that way): /healthz says "degraded" with a 503.
      if (expected === 200 && response.status === 503 && (await response.json()).status === "degraded") break;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    url,
    mcpUrl: `${url}/mcp`,
    port,
    persistDir,
    logs: () => output,
    /** Stops wrangler (and workerd); removes the state directory unless the caller supplied it. */
    stop: async ({ keepState = false } = {}) => {
      if (!exited) {
        const gone = new Promise((resolve) => child.once("exit", resolve));
        killTree(child);
        await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      }
      if (ownsState && !keepState) rmSync(persistDir, { recursive: true, force: true });
    },
  };
}

function killTree(child) {
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {
    // already gone
  }
  setTimeout(() => {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }, 2_000).unref();
}

/**
 * Puts a file into the gateway's local R2 bucket in `persistDir` (the state a gateway started with
 * that persistDir reads), as an operator's `wrangler r2 object put` would, bypassing the gateway.
 */
export async function putLocalR2Object(persistDir, key, file, contentType) {
  await promisify(execFile)(
    "npx",
    [
      "wrangler",
      "r2",
      "object",
      "put",
      `comfyui-mcp-edge-assets/${key}`,
      "--file",
      file,
      ...(contentType ? ["--content-type", contentType] : []),
      "--local",
      "--persist-to",
      persistDir,
    ],
    { cwd: root, env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" } },
  );
}
