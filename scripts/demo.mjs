#!/usr/bin/env node
/**
 * `npm run demo`: the gateway with the fake ComfyUI the tests use, for people without a GPU. The
 * fake renders real PNGs of the requested size and streams sampler progress like ComfyUI 0.3.64.
 * Its backend is named `demo-fake-comfyui`, so `/healthz`, `list_backends` and every job result
 * (`backend`) say that nothing came from a real GPU. State is temporary: it goes when the demo stops.
 *
 * Options: --port (the gateway's, default 8787), --step-delay-ms (the fake's sampler step, default 50).
 */
import { parseArgs } from "node:util";
import { startGateway } from "../test/e2e/gateway.mjs";
import { startFakeComfy } from "../test/fake-comfyui/server.mjs";

export const DEMO_BACKEND = "demo-fake-comfyui";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8787" },
    "step-delay-ms": { type: "string", default: "50" },
  },
});

const fake = await startFakeComfy({ port: 0, stepDelayMs: Number(values["step-delay-ms"]) });
console.log(`demo: fake ComfyUI (no GPU, made-up images) on ${fake.url}, backend '${DEMO_BACKEND}'`);
let gateway;
try {
  gateway = await startGateway({
    comfyUrl: fake.url,
    port: Number(values.port),
    vars: {
      COMFYUI_BACKENDS: JSON.stringify([{ name: DEMO_BACKEND, url: fake.url }]),
      COMFY_MCP_RECONCILE_SECONDS: "5",
    },
  });
} catch (error) {
  await fake.close();
  console.error(`demo: the gateway did not start on port ${values.port} (in use? pick another with --port).`);
  console.error(
    String(error?.message ?? error)
      .split("\n")
      .slice(-15)
      .join("\n"),
  );
  process.exit(1);
}
console.log(
  `demo: gateway ready at ${gateway.mcpUrl} (no authentication: loopback only)\n` +
    `  try it:   npm run client -- -p "a cat on a mat"${values.port === "8787" ? "" : ` --url ${gateway.mcpUrl}`}\n` +
    `  health:   ${gateway.url}/healthz\n` +
    "  stop:     Ctrl-C",
);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await gateway.stop().catch(() => undefined);
  await fake.close().catch(() => undefined);
  process.exit(0);
}
for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => void stop());
