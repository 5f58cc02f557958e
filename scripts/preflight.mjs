#!/usr/bin/env node
/**
 * Runs before `npm start`: says which ComfyUI the gateway is about to drive and whether it answers,
 * with the next step when it does not. It never stops the start (ComfyUI may come up later), and it
 * never prints a secret: URLs are shown as scheme://host[:port] only.
 *
 * Where the configuration comes from, as wrangler dev reads it: process environment (what
 * `npm run demo` passes), then `.dev.vars`, then `[vars]` in wrangler.toml.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const CHECK_TIMEOUT_MS = 3_000;

const config = readConfiguration();
const backends = backendsOf(config);
console.log(
  `ComfyUI backend${backends.length > 1 ? "s" : ""} (from ${config.source("COMFYUI_BACKENDS") ?? config.source("COMFYUI_URL") ?? "the built-in default"}):`,
);
const results = await Promise.all(backends.map((backend) => check(backend, config)));
for (const line of results) console.log(`  ${line}`);
if (existsSync(join(root, ".dev.vars")))
  console.log("  (.dev.vars is read when the gateway starts: restart `npm start` after editing it)");

/** One key's value and where it came from. */
function readConfiguration() {
  const layers = [
    ["the environment", process.env],
    [".dev.vars", parseDevVars(join(root, ".dev.vars"))],
    ["wrangler.toml", parseTomlVars(join(root, "wrangler.toml"))],
  ];
  return {
    get(key) {
      for (const [, values] of layers) if (values[key] !== undefined && values[key] !== "") return values[key];
      return undefined;
    },
    source(key) {
      for (const [name, values] of layers) if (values[key] !== undefined && values[key] !== "") return name;
      return undefined;
    },
  };
}

function parseDevVars(path) {
  if (!existsSync(path)) return {};
  const values = {};
  for (const line of readFileSync(path, "utf8").split(/\r?\n/)) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (match) values[match[1]] = match[2].replace(/^(["'])(.*)\1$/, "$2");
  }
  return values;
}

/** Only the top-level [vars] table: `KEY = "value"` lines until the next table. */
function parseTomlVars(path) {
  const values = {};
  let inVars = false;
  for (const line of readFileSync(path, "utf8").split(/\r?\n/)) {
    if (/^\s*\[/.test(line)) inVars = /^\s*\[vars\]\s*$/.test(line);
    const match = inVars && /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"(.*)"/.exec(line);
    if (match) values[match[1]] = match[2];
  }
  return values;
}

/** The same precedence as src/pool/config.ts: COMFYUI_BACKENDS, numbered backends, COMFYUI_URL. */
function backendsOf(config) {
  const json = config.get("COMFYUI_BACKENDS");
  if (json) {
    try {
      const list = JSON.parse(json);
      if (Array.isArray(list)) return list.map((b) => ({ name: String(b?.name ?? "?"), url: String(b?.url ?? "") }));
    } catch {
      // reported below as an unusable URL; the gateway itself names the problem on /healthz
    }
    return [{ name: "COMFYUI_BACKENDS", url: "" }];
  }
  const numbered = [];
  for (let n = 1; n <= 16; n++) {
    const url = config.get(`COMFYUI_BACKEND_${n}_URL`);
    if (url) numbered.push({ name: config.get(`COMFYUI_BACKEND_${n}_NAME`) ?? `backend${n}`, url });
  }
  if (numbered.length > 0) return numbered;
  return [{ name: "comfyui", url: config.get("COMFYUI_URL") ?? "http://127.0.0.1:8188" }];
}

/** scheme://host[:port]: no credentials, path or query, whatever the URL held. */
function shown(url) {
  try {
    return new URL(url).origin;
  } catch {
    return "(not a URL)";
  }
}

async function check(backend, config) {
  const label = `${backend.name}: ${shown(backend.url)}`;
  let url;
  try {
    url = new URL("/system_stats", backend.url);
    url.username = url.password = ""; // the gateway never sends URL credentials either
  } catch {
    return `${label} is not a valid URL. Next: set COMFYUI_URL (or COMFYUI_BACKENDS) in .dev.vars, then restart.`;
  }
  const headers = {};
  const id = config.get("COMFYUI_ACCESS_CLIENT_ID");
  const secret = config.get("COMFYUI_ACCESS_CLIENT_SECRET");
  if (id && secret) Object.assign(headers, { "CF-Access-Client-Id": id, "CF-Access-Client-Secret": secret });
  const bearer = config.get("COMFYUI_BEARER_TOKEN");
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let response;
  try {
    response = await fetch(url, { headers, redirect: "manual", signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
  } catch (error) {
    const why = error?.name === "TimeoutError" ? `no answer within ${CHECK_TIMEOUT_MS / 1000} s` : "connection failed";
    return (
      `${label} does NOT answer (${why}). Next: start ComfyUI there (e.g. \`python main.py --port 8188\`), ` +
      "or point COMFYUI_URL in .dev.vars at it, or try the gateway without a GPU: `npm run demo`."
    );
  }
  const location = response.headers.get("Location") ?? "";
  const type = response.headers.get("Content-Type") ?? "";
  const body = await response.text().catch(() => "");
  if ((response.status >= 300 && response.status < 400) || type.includes("html")) {
    const access = /cloudflareaccess\.com|cdn-cgi\/access/.test(location + body);
    return access
      ? `${label} answers with a Cloudflare Access sign-in, not ComfyUI. Next: set COMFYUI_ACCESS_CLIENT_ID and COMFYUI_ACCESS_CLIENT_SECRET (a service token) in .dev.vars.`
      : `${label} answers HTTP ${response.status} with a web page, not ComfyUI's API. Next: check the URL (the tunnel must point at ComfyUI's port).`;
  }
  if (!response.ok)
    return `${label} answers HTTP ${response.status}, not ComfyUI's system stats. Next: check the URL and any proxy in front of ComfyUI.`;
  let version = "version unknown";
  try {
    version = `ComfyUI ${JSON.parse(body)?.system?.comfyui_version ?? "version unknown"}`;
  } catch {
    return `${label} answers, but not with ComfyUI's JSON. Next: check the URL.`;
  }
  return `${label} answers (${version}).`;
}
