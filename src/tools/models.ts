/** Model discovery: what ComfyUI has installed, and resolving the model a generation will use. */
import type { McpServer } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import type { ComfyClient } from "../comfy/client";
import { ToolFailure } from "../mcp/results";
import type { ToolContext } from "./context";
import { resolveDefaults } from "./defaults";
import { runTool } from "./run";

export const MODEL_FOLDERS = ["checkpoints", "diffusion_models", "loras", "vae", "text_encoders", "clip_vision", "controlnet", "upscale_models", "embeddings"] as const;

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

export interface ResolvedModel {
  model: string;
  /** Set when the configured default was not installed and another checkpoint was chosen. */
  note?: string;
}

/** The caller's model must be installed; a missing default falls back to an installed checkpoint. */
export async function resolveCheckpoint(tools: ToolContext, requested: string | undefined, signal?: AbortSignal): Promise<ResolvedModel> {
  return chooseCheckpoint(tools.env, await listCheckpoints(tools.comfy, signal), requested);
}

export function chooseCheckpoint(env: Env, installed: string[], requested: string | undefined): ResolvedModel {
  const shown = (list: string[]) => `${list.slice(0, 10).join(", ")}${list.length > 10 ? `, … (${list.length} in all)` : ""}`;
  if (requested !== undefined) {
    if (installed.includes(requested)) return { model: requested };
    if (installed.length === 0) throw new ToolFailure(`Model '${requested}' is not installed: ComfyUI has no checkpoint models at all. Put a checkpoint in ComfyUI's models/checkpoints folder, then retry.`);
    throw new ToolFailure(`Model '${requested}' is not installed in ComfyUI. Available checkpoints: ${shown(installed)}. Call list_models to see them all, or omit 'model' to use the default.`, {
      requested,
      available: installed.slice(0, 50),
    });
  }
  const defaults = resolveDefaults(env, "image");
  const preferred = String(defaults.values.model);
  if (installed.includes(preferred)) return { model: preferred };
  const fallback = installed[0];
  if (!fallback) {
    throw new ToolFailure("ComfyUI has no checkpoint models installed, so nothing can be generated. Put a checkpoint (e.g. an SD 1.5 .safetensors) in ComfyUI's models/checkpoints folder, then retry.");
  }
  return { model: fallback, note: `The default model '${preferred}' (${defaults.sources.model}) is not installed; used '${fallback}'. Set COMFY_MCP_DEFAULT_IMAGE_MODEL to choose.` };
}

export function registerModelTools(server: McpServer, tools: ToolContext): void {
  server.registerTool(
    "list_models",
    {
      title: "List installed models",
      description:
        "List the model files installed in ComfyUI, by folder (default: checkpoints). Use a name from here as the 'model' argument of generate_image.",
      inputSchema: z.object({
        kind: z.enum(MODEL_FOLDERS).optional().describe("Model folder to list. Default: checkpoints."),
      }),
      outputSchema: z.object({
        kind: z.string(),
        models: z.array(z.string()),
        count: z.number().int(),
        default: z.string().nullable().describe("The model generate_image uses when none is given (checkpoints only)."),
      }),
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    ({ kind }, ctx) =>
      runTool(async () => {
        const folder = kind ?? "checkpoints";
        const signal = ctx.mcpReq.signal;
        const models = folder === "checkpoints" ? await listCheckpoints(tools.comfy, signal) : ((await tools.comfy.models(folder, { signal })) ?? []);
        const fallback = folder === "checkpoints" && models.length > 0 ? chooseCheckpoint(tools.env, models, undefined).model : null;
        return { kind: folder, models, count: models.length, default: fallback };
      }),
  );
}
