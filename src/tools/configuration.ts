/** get_defaults: the values generation tools use when an argument is omitted, and where each comes from. */
import type { McpServer } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import type { ToolContext } from "./context";
import { BUILT_IN_DEFAULTS, resolveDefaults, type Namespace } from "./defaults";
import { runTool } from "./run";

const namespaceSchema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

export function registerConfigurationTools(server: McpServer, tools: ToolContext): void {
  server.registerTool(
    "get_defaults",
    {
      title: "Show generation defaults",
      description: "The effective defaults for image, audio and video generation (used when an argument is omitted), with the source of each value (env or built-in).",
      inputSchema: z.object({}),
      outputSchema: z.object({
        image: namespaceSchema,
        audio: namespaceSchema,
        video: namespaceSchema,
        sources: z.record(z.string(), z.record(z.string(), z.string())),
        warnings: z.array(z.string()),
      }),
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    () =>
      runTool(async () => {
        const namespaces = Object.keys(BUILT_IN_DEFAULTS) as Namespace[];
        const resolved = Object.fromEntries(namespaces.map((ns) => [ns, resolveDefaults(tools.env, ns)]));
        return {
          image: resolved.image!.values,
          audio: resolved.audio!.values,
          video: resolved.video!.values,
          sources: Object.fromEntries(namespaces.map((ns) => [ns, resolved[ns]!.sources])),
          warnings: namespaces.flatMap((ns) => resolved[ns]!.invalid),
        };
      }),
  );
}
