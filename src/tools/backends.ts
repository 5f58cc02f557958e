/** list_backends: every ComfyUI backend of the pool with its health, queue and models, as the coordinator sees them. */
import type { McpServer } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import type { LastHour } from "../pool/activity";
import { requireScope, type ToolContext } from "./context";
import { runTool } from "./run";

// Schemas are built once per isolate: building them for every request was a third of a tools/list.
const listBackendsInput = z.object({});

const listBackendsOutput = z.object({
  backends: z
    .array(
      z.object({
        name: z.string(),
        state: z.enum(["up", "down", "unknown"]),
        queue_remaining: z.number().int().nullable(),
      }),
    )
    .describe(
      "Each also has weight, tags, last_error, down_since, node_count, models and last_hour (socket health, completions per path).",
    ),
  message: z.string(),
});

export function registerBackendTools(server: McpServer, tools: ToolContext): void {
  server.registerTool(
    "list_backends",
    {
      title: "List ComfyUI backends",
      description:
        "The ComfyUI machines: up or down, queue, models, socket health. Jobs go to the least busy one with the models, or to 'backend'.",
      inputSchema: listBackendsInput,
      outputSchema: listBackendsOutput,
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    () =>
      runTool(async () => {
        requireScope(tools, "generate");
        const backends = await tools.backends.coordinator.status();
        const up = backends.filter((b) => b.state === "up");
        const down = backends.filter((b) => b.state !== "up").map((b) => b.name);
        const message =
          `${up.length} of ${backends.length} backend${backends.length === 1 ? "" : "s"} up${down.length ? ` (not answering: ${down.join(", ")})` : ""}.` +
          backends.map(socketWarning).join("");
        return { backends, message };
      }),
  );
}

/**
 * A socket that keeps dying, or jobs finished by the safety nets instead of by events, is said out
 * loud: results then arrive seconds late and progress stalls, and the cause is usually the network
 * path (tunnel, proxy) between the gateway and ComfyUI.
 */
function socketWarning(backend: { name: string; last_hour: LastHour }): string {
  const { reconnects, completions } = backend.last_hour;
  const fallback = completions.reconcile + completions.reconnect + completions.get_job;
  const problems = [
    reconnects >= 5 ? `its event socket reconnected ${reconnects} times` : "",
    fallback > 0 && fallback >= completions.event ? `${fallback} job(s) were completed by polling, not by events` : "",
  ].filter(Boolean);
  return problems.length
    ? ` Backend '${backend.name}': in the last hour ${problems.join(" and ")}; check the tunnel or proxy in front of it (README, Troubleshooting).`
    : "";
}
