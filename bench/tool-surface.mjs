#!/usr/bin/env node
/**
 * What the tool surface costs an agent: the bytes of `tools/list` (every byte goes into the
 * agent's context on every turn), per tool and per workflow tool, and how long the two cheapest
 * calls take (`tools/list`, `get_defaults`), each as a ratio against a floor measured in the same
 * run: a minimal Worker with one constant tool (bench/floor) under the same `wrangler dev`, with
 * the same client. See bench/README.md.
 *
 * Targets: `tools/list` <= 2x the floor's, `get_defaults` <= 1.5x the floor's constant tool. Exit
 * code 1 when a target is missed or the run crashes; 2 for a bad option.
 */
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startGateway } from "../test/e2e/gateway.mjs";
import { startFakeComfy } from "../test/fake-comfyui/server.mjs";
import { benchmark, integerOption, percentile, progress, progressDone, reportChecks } from "./cli.mjs";

const TARGET_LIST_RATIO = 2;
const TARGET_DEFAULTS_RATIO = 1.5;

const { values } = parseArgs({
  options: {
    samples: { type: "string", default: "30" },
    warmup: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
  },
});
const samples = integerOption(values, "samples", 1);
const warmup = integerOption(values, "warmup", 0);

let fake;
let gateway;
let floor;
const bench = benchmark("the gateway, the floor Worker and the fake ComfyUI", async () => {
  await gateway?.stop().catch(() => undefined);
  await floor?.stop().catch(() => undefined);
  await fake?.close().catch(() => undefined);
});

await bench.run(async () => {
  fake = await startFakeComfy({ port: 0 });
  [gateway, floor] = await Promise.all([startGateway({ comfyUrl: fake.url }), startFloor()]);
  const ours = await connect(gateway.mcpUrl);
  const base = await connect(floor.mcpUrl);

  const tools = (await ours.listTools()).tools;
  // Which tools are a workflow's own: list_workflows says (tool = null when it has none).
  const listed = (await ours.callTool({ name: "list_workflows", arguments: {} })).structuredContent;
  const surface = measureSurface(tools, new Set(listed.workflows.map((workflow) => workflow.tool)));

  // Alternate ours and the floor call by call, so a noisy moment hits both alike.
  const timings = { list: [], floorList: [], defaults: [], floorCall: [] };
  const steps = [
    ["list", () => ours.listTools()],
    ["floorList", () => base.listTools()],
    ["defaults", () => ours.callTool({ name: "get_defaults", arguments: {} })],
    ["floorCall", () => base.callTool({ name: "constant", arguments: {} })],
  ];
  for (let i = 0; i < warmup + samples; i++) {
    if (bench.interrupted) return;
    progress(`${i < warmup ? "warm-up" : "sample"} ${i + 1}/${warmup + samples}`);
    for (const [key, run] of steps) {
      const started = performance.now();
      const result = await run();
      const took = performance.now() - started;
      if (result.isError) throw new Error(`${key} failed: ${JSON.stringify(result.content)}`);
      if (i >= warmup) timings[key].push(took);
    }
  }
  progressDone();
  await Promise.all([ours.close(), base.close()]);

  const median = (key) => percentile(timings[key], 0.5);
  const latency = {
    tools_list_ms: median("list"),
    floor_tools_list_ms: median("floorList"),
    get_defaults_ms: median("defaults"),
    floor_call_ms: median("floorCall"),
  };
  const ratios = {
    tools_list: latency.tools_list_ms / latency.floor_tools_list_ms,
    get_defaults: latency.get_defaults_ms / latency.floor_call_ms,
  };
  printReport(surface, latency, ratios);
  const pass = reportChecks([
    {
      name: `tools/list ${ratios.tools_list.toFixed(2)}x the floor (<= ${TARGET_LIST_RATIO}x)`,
      pass: ratios.tools_list <= TARGET_LIST_RATIO,
    },
    {
      name: `get_defaults ${ratios.get_defaults.toFixed(2)}x the floor's constant tool (<= ${TARGET_DEFAULTS_RATIO}x)`,
      pass: ratios.get_defaults <= TARGET_DEFAULTS_RATIO,
    },
  ]);
  if (values.json) console.log(JSON.stringify({ surface, latency, ratios, samples, pass }));
});

/** Bytes of compact JSON, as a client holds the list (and roughly 4 bytes per token). */
function measureSurface(tools, workflowNames) {
  const bytes = (value) => Buffer.byteLength(JSON.stringify(value));
  const perTool = tools.map((tool) => ({
    name: tool.name,
    workflow: workflowNames.has(tool.name),
    bytes: bytes(tool),
    input_schema_bytes: bytes(tool.inputSchema ?? {}),
    output_schema_bytes: bytes(tool.outputSchema ?? {}),
  }));
  const workflowTools = perTool.filter((tool) => tool.workflow);
  const total = bytes({ tools });
  return {
    tools: tools.length,
    total_bytes: total,
    estimated_tokens: Math.round(total / 4),
    workflow_tools: workflowTools.length,
    largest_workflow_tool_bytes: Math.max(0, ...workflowTools.map((tool) => tool.bytes)),
    per_tool: perTool,
  };
}

function printReport(surface, latency, ratios) {
  console.log("tool surface: what tools/list costs an agent, and the two cheapest calls against a floor Worker\n");
  console.log(
    `tools/list: ${surface.tools} tools, ${surface.total_bytes} B compact JSON (~${surface.estimated_tokens} tokens); ` +
      `${surface.workflow_tools} workflow tools, the largest ${surface.largest_workflow_tool_bytes} B\n`,
  );
  console.log("tool                      bytes   input   output");
  for (const tool of [...surface.per_tool].sort((a, b) => b.bytes - a.bytes))
    console.log(
      `${`${tool.name}${tool.workflow ? " (wf)" : ""}`.padEnd(24)} ${String(tool.bytes).padStart(7)} ${String(tool.input_schema_bytes).padStart(7)} ${String(tool.output_schema_bytes).padStart(8)}`,
    );
  const row = (name, ms, floorMs, ratio) =>
    console.log(
      `${name.padEnd(14)} ${ms.toFixed(1).padStart(8)} ms   floor ${floorMs.toFixed(1).padStart(7)} ms   ${ratio.toFixed(2)}x`,
    );
  console.log(`\nmedian latency over ${samples} calls each (SDK v1 client, Streamable HTTP, wrangler dev):`);
  row("tools/list", latency.tools_list_ms, latency.floor_tools_list_ms, ratios.tools_list);
  row("get_defaults", latency.get_defaults_ms, latency.floor_call_ms, ratios.get_defaults);
  console.log("  (get_defaults is compared with the floor's constant tool: both are a tools/call)\n");
}

async function connect(mcpUrl) {
  const client = new Client({ name: "tool-surface-bench", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl)));
  return client;
}

/** The floor Worker under its own `wrangler dev`, started like the gateway (its ComfyUI URL unused). */
function startFloor() {
  return startGateway({ comfyUrl: "http://127.0.0.1:9", config: "bench/floor/wrangler.toml" });
}
