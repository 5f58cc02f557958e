#!/usr/bin/env node
// Run the fake ComfyUI as its own process:
//   node test/fake-comfyui/cli.mjs [--port 8188] [--host 127.0.0.1] [--step-delay-ms 50]
//                                  [--node-delay-ms 1] [--checkpoints a.ckpt,b.safetensors]
//                                  [--models diffusion_models=a.safetensors,b.safetensors] (repeatable; empty list: "vae=")
//                                  [--node-ms VAEDecode=15000] (repeatable: a silent per-class node duration)
// Prints exactly one line once listening (tests parse it):
//   fake ComfyUI listening on http://127.0.0.1:PORT
// Control it over HTTP: POST /__fake/faults, /__fake/restart, /__fake/drop-sockets (see README.md).
import { parseArgs } from "node:util";
import { startFakeComfy } from "./server.mjs";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8188" },
    host: { type: "string", default: "127.0.0.1" },
    "step-delay-ms": { type: "string" },
    "node-delay-ms": { type: "string" },
    checkpoints: { type: "string" },
    models: { type: "string", multiple: true },
    "node-ms": { type: "string", multiple: true },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(
    "usage: node test/fake-comfyui/cli.mjs [--port 8188] [--host 127.0.0.1] [--step-delay-ms 5] [--node-delay-ms 1] [--checkpoints a,b] [--models folder=a,b ...] [--node-ms Class=ms ...]",
  );
  process.exit(0);
}

const list = (v) =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
/** @type {Record<string, string[]>} */
const models = {};
for (const spec of values.models ?? []) {
  const eqAt = spec.indexOf("=");
  if (eqAt <= 0) {
    console.error(`--models expects folder=file,file (got '${spec}')`);
    process.exit(2);
  }
  models[spec.slice(0, eqAt).trim()] = list(spec.slice(eqAt + 1));
}
/** @type {Record<string, number>} */
const nodeDelayMsByClass = {};
for (const spec of values["node-ms"] ?? []) {
  const eqAt = spec.indexOf("=");
  const ms = Number(spec.slice(eqAt + 1));
  if (eqAt <= 0 || spec.slice(eqAt + 1).trim() === "" || !Number.isFinite(ms) || ms < 0) {
    console.error(`--node-ms expects Class=ms (got '${spec}')`);
    process.exit(2);
  }
  nodeDelayMsByClass[spec.slice(0, eqAt).trim()] = ms;
}

const options = {
  port: Number(values.port),
  host: values.host,
  ...(values["step-delay-ms"] !== undefined && { stepDelayMs: Number(values["step-delay-ms"]) }),
  ...(values["node-delay-ms"] !== undefined && { nodeDelayMs: Number(values["node-delay-ms"]) }),
  ...(values.checkpoints !== undefined && { checkpoints: list(values.checkpoints) }),
  models,
  nodeDelayMsByClass,
};
let fake;
try {
  fake = await startFakeComfy(options);
} catch (error) {
  // A newcomer's most likely mistake (a real ComfyUI, or a fake from earlier, holds the port):
  // one line that says what to do, not a stack trace.
  if (error?.code === "EADDRINUSE") {
    console.error(
      `fake ComfyUI: port ${options.port} on ${options.host} is already in use (a real ComfyUI, or a fake started earlier?). ` +
        "Stop it, or pick another port with --port and point the gateway at it (COMFYUI_URL in .dev.vars).",
    );
    process.exit(1);
  }
  throw error;
}
console.log(`fake ComfyUI listening on ${fake.url}`);

let stopping = false;
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    if (stopping) process.exit(1);
    stopping = true;
    await fake.close();
    process.exit(0);
  });
}
