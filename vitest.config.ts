import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

const EVENT_PATH_TESTS = "test/worker/event-path.test.ts";

/**
 * A project inside workerd (units, the studio Durable Object, the MCP route) against its own fake
 * ComfyUI, started by the global setup; one fake serves every file, and some files inject faults.
 */
function workerProject(name: string, files: { include: string[]; exclude?: string[] }, reconcileSeconds: string) {
  return {
    plugins: [
      cloudflareTest(({ inject }) => ({
        main: "./src/index.ts",
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            COMFYUI_URL: `http://127.0.0.1:${inject("comfyPort")}`,
            COMFY_MCP_RECONCILE_SECONDS: reconcileSeconds,
            COMFY_MCP_WAIT_SECONDS: "20",
            // Loopback mode, as `npm start` runs it (it is not in wrangler.toml's [vars]).
            ALLOW_UNAUTHENTICATED_LOCAL: "true",
          },
        },
      })),
    ],
    test: {
      name,
      ...files,
      globalSetup: ["./test/worker/global-setup.ts"],
      fileParallelism: false,
      testTimeout: 30_000,
    },
  };
}

// `worker` reconciles every 0.5 s (fast safety nets); `worker-events` every 300 s, so no safety net
// can complete a job and a passing test shows that ComfyUI's events did; `e2e` runs in Node and
// drives a real `wrangler dev` with real MCP clients (SDK v1 and v2).
export default defineConfig({
  test: {
    projects: [
      workerProject("worker", { include: ["test/worker/**/*.test.ts"], exclude: [EVENT_PATH_TESTS] }, "0.5"),
      workerProject("worker-events", { include: [EVENT_PATH_TESTS] }, "300"),
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
