import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Two projects: `worker` runs inside workerd (units, the studio Durable Object, the MCP route)
// against a fake ComfyUI started by the global setup; `e2e` runs in Node and drives a real
// `wrangler dev` with real MCP clients (SDK v1 and v2).
export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest(({ inject }) => ({
            main: "./src/index.ts",
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                COMFYUI_URL: `http://127.0.0.1:${inject("comfyPort")}`,
                COMFY_MCP_RECONCILE_SECONDS: "0.5",
                COMFY_MCP_WAIT_SECONDS: "20",
              },
            },
          })),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          exclude: ["test/worker/event-path.test.ts"],
          globalSetup: ["./test/worker/global-setup.ts"],
          // One fake ComfyUI serves every file, and some files inject faults into it.
          fileParallelism: false,
          testTimeout: 30_000,
        },
      },
      {
        // The event path alone: reconciliation every 300 s, so no safety net can complete a job and
        // a test that passes shows that the WebSocket did the work. Its own fake ComfyUI.
        plugins: [
          cloudflareTest(({ inject }) => ({
            main: "./src/index.ts",
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                COMFYUI_URL: `http://127.0.0.1:${inject("comfyPort")}`,
                COMFY_MCP_RECONCILE_SECONDS: "300",
                COMFY_MCP_WAIT_SECONDS: "20",
              },
            },
          })),
        ],
        test: {
          name: "worker-events",
          include: ["test/worker/event-path.test.ts"],
          globalSetup: ["./test/worker/global-setup.ts"],
          fileParallelism: false,
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.mjs"],
          environment: "node",
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
