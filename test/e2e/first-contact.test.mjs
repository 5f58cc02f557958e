// A newcomer's first minutes (issue #14's trial): `npm start` says which ComfyUI it will drive and
// whether it answers, with the next step when it does not (scripts/preflight.mjs, run by prestart),
// and `npm run demo` gives a working gateway without a GPU, labelled as a demo everywhere.
import { execFile, spawn } from "node:child_process";
import { createServer } from "node:http";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { connectV1 } from "./clients.mjs";
import { freePort } from "./gateway.mjs";

const SECRET = "s3cr3t-access-secret-value-9f1c";

async function preflight(env) {
  const { stdout } = await promisify(execFile)(process.execPath, ["scripts/preflight.mjs"], {
    timeout: 20_000,
    env: { ...process.env, COMFYUI_BACKENDS: "", ...env },
  });
  return stdout;
}

describe("npm start's preflight (scripts/preflight.mjs)", () => {
  let fake;
  let access;
  beforeAll(async () => {
    fake = await startFakeComfy({ port: 0 });
    // What a Cloudflare Tunnel behind Access answers without a service token: a 302 to the sign-in.
    access = createServer((_req, res) => {
      res.writeHead(302, { Location: "https://team.cloudflareaccess.com/cdn-cgi/access/login/comfy.example.com" });
      res.end();
    });
    await new Promise((resolve) => access.listen(0, "127.0.0.1", resolve));
  });
  afterAll(async () => {
    await fake?.close();
    await new Promise((resolve) => access?.close(resolve));
  });

  it("names the effective ComfyUI and says it answers, with its version (GET_system_stats.json)", async () => {
    const out = await preflight({ COMFYUI_URL: fake.url });
    expect(out).toContain("from the environment");
    expect(out).toContain(`comfyui: ${fake.url} answers (ComfyUI 0.3.64).`);
  });

  it("says when ComfyUI does not answer, and what to do next (npm run demo among the options)", async () => {
    const port = await freePort();
    const out = await preflight({ COMFYUI_URL: `http://127.0.0.1:${port}` });
    expect(out).toMatch(new RegExp(`comfyui: http://127\\.0\\.0\\.1:${port} does NOT answer \\(connection failed\\)`));
    expect(out).toMatch(/Next: start ComfyUI there .*`npm run demo`/);
  });

  it("recognises a Cloudflare Access sign-in and never prints secrets, URL credentials or queries", async () => {
    const port = access.address().port;
    const out = await preflight({
      COMFYUI_URL: `http://user:hunter2@127.0.0.1:${port}/comfy?token=abc123`,
      COMFYUI_ACCESS_CLIENT_ID: "id-value.access",
      COMFYUI_ACCESS_CLIENT_SECRET: SECRET,
    });
    expect(out).toContain(`comfyui: http://127.0.0.1:${port} answers with a Cloudflare Access sign-in`);
    expect(out).toMatch(/set COMFYUI_ACCESS_CLIENT_ID and COMFYUI_ACCESS_CLIENT_SECRET/);
    for (const secret of [SECRET, "hunter2", "abc123", "id-value.access"]) expect(out).not.toContain(secret);
  });

  it("lists every backend of COMFYUI_BACKENDS, each with its own verdict", async () => {
    const down = await freePort();
    const out = await preflight({
      COMFYUI_BACKENDS: JSON.stringify([
        { name: "desk", url: fake.url },
        { name: "laptop", url: `http://127.0.0.1:${down}` },
      ]),
    });
    expect(out).toContain("ComfyUI backends (from the environment):");
    expect(out).toContain(`desk: ${fake.url} answers (ComfyUI 0.3.64).`);
    expect(out).toContain(`laptop: http://127.0.0.1:${down} does NOT answer`);
  });
});

describe("npm run demo (scripts/demo.mjs)", () => {
  it("starts a gateway on the fake ComfyUI whose results and /healthz say 'demo-fake-comfyui', and stops cleanly", async () => {
    const port = await freePort();
    const demo = spawn(process.execPath, ["scripts/demo.mjs", "--port", String(port), "--step-delay-ms", "5"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    demo.stdout.on("data", (chunk) => (output += chunk));
    demo.stderr.on("data", (chunk) => (output += chunk));
    const exited = new Promise((resolve) => demo.once("exit", resolve));
    try {
      for (let waited = 0; !output.includes("gateway ready"); waited += 200) {
        if (waited > 90_000 || demo.exitCode !== null) throw new Error(`demo did not start:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(output).toContain(`gateway ready at http://127.0.0.1:${port}/mcp`);
      const health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json();
      expect(JSON.stringify(health)).toContain("demo-fake-comfyui");
      const client = await connectV1(`http://127.0.0.1:${port}/mcp`);
      try {
        const result = await client.call("generate_image", { prompt: "a demo cat", width: 64, height: 64, steps: 2 });
        expect(result.isError).toBeFalsy();
        expect(result.structuredContent).toMatchObject({ status: "completed", backend: "demo-fake-comfyui" });
      } finally {
        await client.close();
      }
    } finally {
      demo.kill("SIGTERM");
      await exited;
    }
    // The gateway went with it: nothing listens on the port any more.
    await expect(fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();
  });
});
