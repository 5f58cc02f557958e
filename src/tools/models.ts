/** Model discovery: what ComfyUI has installed, and resolving the model a generation will use. */
import type { McpServer } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import type { ComfyClient } from "../comfy/client";
import { askAll } from "../pool/ask";
import { effectiveDefaults } from "./configuration";
import { requireScope, type ToolContext } from "./context";
import { runTool } from "./run";

export const MODEL_FOLDERS = [
  "checkpoints",
  "diffusion_models",
  "loras",
  "vae",
  "text_encoders",
  "clip_vision",
  "controlnet",
  "upscale_models",
  "embeddings",
] as const;

export async function listCheckpoints(comfy: ComfyClient, signal?: AbortSignal): Promise<string[]> {
  const fromModels = await comfy.models("checkpoints", { signal });
  if (fromModels) return fromModels;
  // Older servers: the combo of CheckpointLoaderSimple (comfyui-api.md §13.1).
  const info = (await comfy.objectInfo("CheckpointLoaderSimple", { signal })) as {
    CheckpointLoaderSimple?: { input?: { required?: { ckpt_name?: [unknown, ...unknown[]] } } };
  };
  const combo = info.CheckpointLoaderSimple?.input?.required?.ckpt_name?.[0];
  return Array.isArray(combo) ? combo.filter((m): m is string => typeof m === "string") : [];
}

/** The checkpoint generate_image uses when none is given: the effective default if installed, else the first installed. */
async function defaultCheckpoint(tools: ToolContext, installed: string[]): Promise<string | null> {
  const preferred = String(
    effectiveDefaults(tools.env, await tools.studio.defaultsLayers(), "image").values.model ?? "",
  );
  return installed.includes(preferred) ? preferred : (installed[0] ?? null);
}

// Schemas are built once per isolate: building them for every request was a third of a tools/list.
const listModelsInput = z.object({
  kind: z.enum(MODEL_FOLDERS).optional().describe("Model folder to list. Default: checkpoints."),
  backend: z.string().trim().min(1).max(32).optional().describe("Only this backend's models (list_backends)."),
});

const listModelsOutput = z.object({
  kind: z.string(),
  models: z.array(z.string()),
  count: z.number().int(),
  default: z.string().nullable().describe("generate_image's model when none is given."),
  by_backend: z.record(z.string(), z.array(z.string())),
  unreachable: z.record(z.string(), z.string()).describe("Backends not asked, with the error."),
});

export function registerModelTools(server: McpServer, tools: ToolContext): void {
  server.registerTool(
    "list_models",
    {
      title: "List installed models",
      description:
        "Model files installed in ComfyUI, by folder (default checkpoints): names for a tool's 'model' argument, per backend.",
      inputSchema: listModelsInput,
      outputSchema: listModelsOutput,
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    ({ kind, backend }, ctx) =>
      runTool(async () => {
        requireScope(tools, "generate");
        const folder = kind ?? "checkpoints";
        const signal = ctx.mcpReq.signal;
        const clients = backend === undefined ? tools.backends.all() : [tools.backends.client(backend)];
        const list = (comfy: ComfyClient) =>
          folder === "checkpoints"
            ? listCheckpoints(comfy, signal)
            : comfy.models(folder, { signal }).then((m) => m ?? []);
        const answers = await askAll(clients, list);
        const byBackend = Object.fromEntries(answers.flatMap((a) => (a.ok ? [[a.backend, a.value]] : [])));
        const unreachable = Object.fromEntries(answers.flatMap((a) => (a.ok ? [] : [[a.backend, a.error]])));
        const lists = Object.values(byBackend);
        const models = lists.length === 1 ? lists[0]! : [...new Set(lists.flat())].sort();
        const fallback = folder === "checkpoints" ? await defaultCheckpoint(tools, models) : null;
        return { kind: folder, models, count: models.length, default: fallback, by_backend: byBackend, unreachable };
      }),
  );
}
