#!/usr/bin/env node
/**
 * CLI test client for the gateway, the counterpart of the original Python server's test_client.py:
 * connect over Streamable HTTP, list the tools, show the server's defaults, generate one image with
 * a live progress bar, follow the job handle if the call returns before the image is done, and
 * print what was produced. Exit 0 on success, 1 on any failure.
 *
 *   npm run client -- -p "a cat on a mat"            (gateway from `npm start` on 127.0.0.1:8787)
 */
import { parseArgs } from "node:util";

const DEFAULT_PROMPT =
  "an english mastiff dog, mouth closed, standing majestically in a grassy field, bright shiny day, forest background";
const DEFAULT_URL = "http://127.0.0.1:8787/mcp";
const OPEN_STATUSES = new Set(["submitting", "queued", "running"]);
/** The gateway never blocks a call longer than 55 s; the client must wait at least that long. */
const MAX_WAIT_SECONDS = 55;

const USAGE = `Usage: npm run client -- [options]

  -p, --prompt <text>     what to draw (default: an english mastiff in a field)
      --url <url>         MCP endpoint (default ${DEFAULT_URL}, or env COMFY_MCP_URL)
      --token <token>     sends "Authorization: Bearer <token>" (or env COMFY_MCP_TOKEN)
      --client v1|v2      MCP client SDK: v1 = @modelcontextprotocol/sdk, v2 = @modelcontextprotocol/client (default v1)
      --width <px>        image width, a multiple of 8 (default: the server's)
      --height <px>       image height, a multiple of 8 (default: the server's)
      --steps <n>         sampling steps (default: the server's)
      --seed <n>          sampler seed (default: random)
      --wait <seconds>    how long each call blocks before returning a job handle (0-55, default: the server's)
      --backend <name>    run on this ComfyUI backend (default: the gateway chooses; see list_backends)
  -h, --help              show this help`;

/** Failures we explain ourselves (printed as one `[X]` line, no stack); anything else is a bug. */
class ToolError extends Error {}
class ConnectionError extends Error {}

const opts = readOptions();
let client;
try {
  await main();
  await close(0);
} catch (error) {
  fail(error);
  await close(1);
}

async function main() {
  console.log("ComfyUI MCP test client");
  console.log(`  server  ${opts.url}${opts.token ? "  (bearer token set)" : ""}`);
  console.log(
    `  sdk     ${opts.client === "v2" ? "@modelcontextprotocol/client (v2)" : "@modelcontextprotocol/sdk (v1)"}\n`,
  );

  client = await connect(opts);
  const server = client.getServerVersion?.();
  console.log(`[OK] Connected to ${server ? `${server.name} ${server.version}` : "the server"}\n`);

  const { tools } = await client.listTools();
  console.log(`Available tools (${tools.length}):`);
  for (const tool of tools) console.log(`  • ${tool.name}: ${firstSentence(tool.description)}`);
  console.log();

  const defaults = await callTool("get_defaults", {});
  printDefaults(defaults);

  const args = { prompt: opts.prompt };
  for (const key of ["width", "height", "steps", "seed"]) if (opts[key] !== undefined) args[key] = opts[key];
  if (opts.wait !== undefined) args.wait_seconds = opts.wait;
  if (opts.backend !== undefined) args.backend = opts.backend;
  const image = defaults.image ?? {};
  console.log(`Generating: "${opts.prompt}"`);
  console.log(
    `  ${args.width ?? image.width}x${args.height ?? image.height}, ${args.steps ?? image.steps} steps, seed ${args.seed ?? "random"}\n`,
  );

  const started = performance.now();
  const bar = progressBar();
  let job;
  try {
    job = await callTool("generate_image", args, bar.update);
    // The call returned a handle before the image was done: follow it exactly as an agent would.
    const pollWait = Math.min(MAX_WAIT_SECONDS, Math.max(1, opts.wait ?? 30));
    while (OPEN_STATUSES.has(job.status)) {
      bar.note(`${job.status}; waiting with get_job (${pollWait} s per call)`, job.progress?.fraction);
      job = await callTool("get_job", { prompt_id: job.prompt_id, wait_seconds: pollWait }, bar.update);
    }
  } finally {
    bar.end();
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (job.status !== "completed") throw new ToolError(`job ${job.job_id} ended as ${job.status}: ${job.message}`);
  printAssets(job, seconds);
}

// --- options ------------------------------------------------------------------------------------

function readOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        prompt: { type: "string", short: "p", default: DEFAULT_PROMPT },
        url: { type: "string", default: process.env.COMFY_MCP_URL || DEFAULT_URL },
        token: { type: "string", default: process.env.COMFY_MCP_TOKEN || undefined },
        client: { type: "string", default: "v1" },
        backend: { type: "string" },
        // Numbers arrive as strings and are converted below.
        ...Object.fromEntries(["width", "height", "steps", "seed", "wait"].map((name) => [name, { type: "string" }])),
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    usageError(error.message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (!["v1", "v2"].includes(values.client)) usageError(`--client must be v1 or v2, not '${values.client}'`);
  try {
    new URL(values.url);
  } catch {
    usageError(`--url '${values.url}' is not a URL`);
  }
  // Numbers are checked loosely here (integers); the server validates ranges and says what is wrong.
  const number = (name, integer = true) => {
    if (values[name] === undefined) return undefined;
    const parsed = Number(values[name]);
    if (values[name].trim() === "" || !Number.isFinite(parsed) || (integer && !Number.isInteger(parsed)))
      usageError(`--${name} must be ${integer ? "an integer" : "a number"}, not '${values[name]}'`);
    return parsed;
  };
  return {
    ...values,
    width: number("width"),
    height: number("height"),
    steps: number("steps"),
    seed: number("seed"),
    wait: number("wait", false),
  };
}

function usageError(message) {
  console.error(`[X] ${message}\n\n${USAGE}`);
  process.exit(1);
}

// --- MCP ----------------------------------------------------------------------------------------

/** Both SDK generations speak the same protocol; only the import paths and callTool's shape differ. */
async function connect({ url, token, client: generation }) {
  const requestInit = token ? { headers: { Authorization: `Bearer ${token}` } } : undefined;
  const sdk =
    generation === "v2"
      ? await import("@modelcontextprotocol/client")
      : {
          ...(await import("@modelcontextprotocol/sdk/client/index.js")),
          ...(await import("@modelcontextprotocol/sdk/client/streamableHttp.js")),
        };
  const mcp = new sdk.Client({ name: "comfyui-mcp-edge-cli", version: "0.1.0" });
  await mcp.connect(new sdk.StreamableHTTPClientTransport(new URL(url), { requestInit })).catch(connectionError);
  // v1's callTool takes a result schema before the request options; v2 dropped that parameter.
  mcp.callToolCompat =
    generation === "v2"
      ? (params, options) => mcp.callTool(params, options)
      : (params, options) => mcp.callTool(params, undefined, options);
  return mcp;
}

/** Calls a tool and returns its structured result; a tool-level error becomes a ToolError. */
async function callTool(name, args, onprogress) {
  // A blocking call may legitimately take the server's whole wait budget: allow that plus slack in
  // all. With progress, the gateway sends a notification at least every 5 s while the job runs (a
  // heartbeat through long silent nodes), so a 20 s silence means the server or network is gone.
  const waitSeconds = args.wait_seconds ?? MAX_WAIT_SECONDS;
  const total = (waitSeconds + 30) * 1000;
  const options = onprogress
    ? { onprogress, timeout: 20_000, resetTimeoutOnProgress: true, maxTotalTimeout: total }
    : { timeout: total };
  const result = await client.callToolCompat({ name, arguments: args }, options);
  const text = result.content?.find((item) => item.type === "text")?.text ?? "";
  // The server's text is a sentence, sometimes followed by a JSON details block: indent it under [X].
  if (result.isError)
    throw new ToolError(
      `${name}: ${(text || "the server reported an error without a message").trim().replaceAll("\n", "\n    ")}`,
    );
  if (result.structuredContent) return result.structuredContent;
  try {
    return JSON.parse(text);
  } catch {
    throw new ToolError(`${name}: the result has neither structured content nor JSON text`);
  }
}

function connectionError(error) {
  // v1 puts the HTTP status in `code`, v2 (SdkHttpError) in `status`.
  const status = typeof error?.status === "number" ? error.status : error?.code;
  const body = String(error?.message ?? error);
  // The gateway answers refusals with JSON { error, message }; show its message, not the raw body.
  const serverMessage = body.match(/"message"\s*:\s*"((?:[^"\\]|\\.)*)"/)?.[1]?.replace(/\\(.)/g, "$1");
  let hint;
  if (status === 401 || status === 403)
    hint = "the server wants credentials: pass --token <token> (or set COMFY_MCP_TOKEN).";
  else if (typeof status === "number" && status >= 400)
    hint = `the server answered HTTP ${status}: check --url (the MCP endpoint is /mcp) and the gateway's configuration.`;
  else hint = "is the gateway running? Start it with `npm start` (and ComfyUI, or `npm run fake-comfyui`).";
  const cause = error?.cause?.code ?? error?.cause?.message;
  throw new ConnectionError(
    `could not connect to ${opts.url}: ${serverMessage ?? body}${cause ? ` (${cause})` : ""}\n    Hint: ${hint}`,
  );
}

async function close(code) {
  await client?.close().catch(() => undefined);
  process.exit(code);
}

function fail(error) {
  if (error instanceof ToolError || error instanceof ConnectionError) console.error(`[X] ${error.message}`);
  else
    console.error(
      `[X] ${error?.message ?? error}${error?.cause ? ` (${error.cause.code ?? error.cause.message ?? error.cause})` : ""}`,
    );
}

// --- output -------------------------------------------------------------------------------------

function firstSentence(text = "") {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.match(/^.*?[.!?](?=\s|$)/)?.[0] ?? flat;
}

function printDefaults({ image = {}, sources = {}, warnings = [] }) {
  const { width, height, steps, cfg, sampler_name, scheduler, denoise, model, negative_prompt } = image;
  console.log(
    `Server defaults (image): ${width}x${height}, ${steps} steps, cfg ${cfg}, ${sampler_name}/${scheduler}, denoise ${denoise}, model ${model}, negative "${negative_prompt}"`,
  );
  const fromEnv = Object.entries(sources.image ?? {})
    .filter(([, source]) => source === "env")
    .map(([key]) => key);
  if (fromEnv.length > 0) console.log(`  set by environment: ${fromEnv.join(", ")}`);
  for (const warning of warnings) console.log(`  [!] ${warning}`);
  console.log();
}

function printAssets(job, seconds) {
  console.log(`[OK] ${job.message} (${seconds} s)`);
  for (const [index, asset] of job.assets.entries()) {
    console.log(`\nAsset ${index + 1}/${job.assets.length}`);
    console.log(`  asset_id   ${asset.asset_id}`);
    console.log(`  filename   ${asset.subfolder ? `${asset.subfolder}/` : ""}${asset.filename}`);
    console.log(`  mime type  ${asset.mime_type}`);
    console.log(`  size       ${asset.width ?? "?"}x${asset.height ?? "?"}, ${asset.bytes_size ?? "?"} bytes`);
    console.log(`  job id     ${asset.job_id}`);
    console.log(`  backend    ${asset.backend}`);
    console.log(`  uri        ${asset.resource_uri}`);
  }
  if (job.params?.seed !== undefined) console.log(`\nSeed ${job.params.seed} (pass --seed to reproduce).`);
}

/**
 * One progress line redrawn in place on a terminal; when stdout is a pipe or file, plain lines
 * (only when something changed), so logs stay readable but still show the job moving.
 */
function progressBar() {
  const tty = Boolean(process.stdout.isTTY);
  const width = 30;
  let drawn = false;
  let last = "";
  let lastFraction = 0;
  const draw = (fraction, message) => {
    const percent = `${String(Math.floor(fraction * 100)).padStart(3)}%`;
    if (tty) {
      const filled = Math.round(fraction * width);
      const line = `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${percent}  ${message}`;
      // Truncate to the terminal width: a wrapped line cannot be redrawn with \r.
      process.stdout.write(`\r${line.slice(0, (process.stdout.columns || 100) - 1)}\x1b[K`);
      drawn = true;
    } else {
      const line = `  ${percent}  ${message}`;
      if (line !== last) console.log(line);
      last = line;
    }
  };
  return {
    update: ({ progress, total, message }) => {
      lastFraction = total ? Math.min(1, progress / total) : lastFraction;
      draw(lastFraction, message ?? "");
    },
    /** A client-side status (e.g. between polls), drawn at the job's own or the last known progress. */
    note: (message, fraction) => {
      if (typeof fraction === "number") lastFraction = Math.max(lastFraction, Math.min(1, fraction));
      draw(lastFraction, message);
    },
    end: () => {
      if (drawn) process.stdout.write("\n");
      drawn = false;
    },
  };
}
