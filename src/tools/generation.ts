/**
 * generate_image: the bundled SD1.5-style txt2img workflow (workflows/generate_image.json),
 * parameters written through its PARAM_* bindings, a fresh seed per call, a bounded wait with
 * progress, and the registered assets (or a job handle) back.
 */
import type { McpServer, ServerContext } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import type { ComfyGraph } from "../comfy/types";
import { failure, success, ToolFailure } from "../mcp/results";
import generateImageGraph from "../../workflows/generate_image.json";
import { discoverParams, randomSeed, RenderError, renderGraph } from "../workflows/params";
import type { Scalar } from "../studio/records";
import type { ToolContext } from "./context";
import { resolveDefaults } from "./defaults";
import { resolveCheckpoint } from "./models";
import { runTool } from "./run";
import { assetLinks, describeJob, jobResult, jobResultSchema, waitSecondsArg } from "./schemas";
import { waitForJob } from "./wait";

const TEMPLATE = generateImageGraph as ComfyGraph;
const PARAMS = discoverParams(TEMPLATE);
const MAX_SEED = Number.MAX_SAFE_INTEGER;

const generateImageInput = z.object({
  prompt: z.string().trim().min(1, "prompt is empty: describe the image to generate").max(20_000).describe("What to draw: the positive text prompt."),
  negative_prompt: z.string().max(20_000).optional().describe("What to avoid. Default: 'text, watermark' (or COMFY_MCP_DEFAULT_IMAGE_NEGATIVE_PROMPT)."),
  seed: z
    .number()
    .int()
    .min(0)
    .max(MAX_SEED)
    .optional()
    .describe("Sampler seed (0 to 2^53-1). Omit for a fresh random seed each call; reuse a result's seed to reproduce it."),
  steps: z.number().int().min(1).max(200).optional().describe("Sampling steps; more is slower and usually finer. Default 20."),
  cfg: z.number().min(0).max(100).optional().describe("Classifier-free guidance: how strictly to follow the prompt. Default 8.0."),
  sampler_name: z.string().min(1).max(100).optional().describe("ComfyUI sampler, e.g. euler, euler_ancestral, dpmpp_2m, ddim. Default euler."),
  scheduler: z.string().min(1).max(100).optional().describe("ComfyUI scheduler, e.g. normal, karras, exponential, simple. Default normal."),
  denoise: z.number().min(0).max(1).optional().describe("Denoising strength 0-1. Default 1.0."),
  model: z.string().min(1).max(500).optional().describe("Checkpoint file name as listed by list_models. Default: the configured default, or the first installed checkpoint."),
  width: z.number().int().min(16).max(8192).multipleOf(8).optional().describe("Image width in pixels, a multiple of 8. Default 512."),
  height: z.number().int().min(16).max(8192).multipleOf(8).optional().describe("Image height in pixels, a multiple of 8. Default 512."),
  wait_seconds: waitSecondsArg,
});

type GenerateImageArgs = z.infer<typeof generateImageInput>;

export function registerGenerationTools(server: McpServer, tools: ToolContext): void {
  server.registerTool(
    "generate_image",
    {
      title: "Generate an image",
      description:
        "Generate an image from a text prompt on your ComfyUI (SD1.5-style txt2img). Waits for the result (streaming progress) " +
        "up to wait_seconds and returns the assets; if the job is still running then, returns its job_id: call get_job to collect it.",
      inputSchema: generateImageInput,
      outputSchema: jobResultSchema,
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    (args, ctx) => runTool(() => generateImage(tools, args, ctx)),
  );
}

async function generateImage(tools: ToolContext, args: GenerateImageArgs, ctx: ServerContext) {
  const defaults = resolveDefaults(tools.env, "image").values;
  const { model, note } = await resolveCheckpoint(tools, args.model, ctx.mcpReq.signal);
  const values: Record<string, unknown> = {
    ...defaults,
    ...stripUndefined(args),
    model,
    seed: args.seed ?? randomSeed(),
  };
  const promptId = crypto.randomUUID();
  let graph: ComfyGraph;
  try {
    graph = renderGraph(TEMPLATE, PARAMS, values);
  } catch (error) {
    if (error instanceof RenderError) throw new ToolFailure(error.message);
    throw error;
  }
  // A unique prefix keeps this job's files together in ComfyUI's output/ and easy to prune.
  for (const node of Object.values(graph)) {
    if (node.class_type === "SaveImage") node.inputs.filename_prefix = `mcp/${promptId.slice(0, 8)}`;
  }
  const params = Object.fromEntries(PARAMS.map((param) => [param.name, values[param.name] as Scalar]));
  const submitted = await tools.studio.submit({ prompt_id: promptId, workflow_id: "generate_image", tool: "generate_image", graph, params });
  if (!submitted.ok) return failure(submitted.error.message, { kind: submitted.error.kind });

  const waitMs = args.wait_seconds !== undefined ? args.wait_seconds * 1000 : tools.config.waitMs;
  const { job } = await waitForJob(tools, ctx, promptId, waitMs);
  const current = job ?? submitted.job;
  const message = describeJob(current) + (note ? ` ${note}` : "");
  if (current.status === "failed" || current.status === "lost" || current.status === "cancelled") {
    return failure(message, { job_id: current.job_id, status: current.status, error: current.error });
  }
  return success(jobResult(current, message), assetLinks(current));
}

function stripUndefined(args: GenerateImageArgs): Record<string, unknown> {
  const { wait_seconds: _wait, ...rest } = args;
  return Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== undefined));
}
