/** Output schemas shared by the job tools, with the result builders that fill them. */
import type { ContentBlock } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import { signedDownloadUrl } from "../assets/downloads";
import { type AssetView, COMPLETION_PATHS, type JobView } from "../studio/records";
import type { ToolContext } from "./context";

export const promptIdArg = z
  .string()
  .trim()
  .min(1, "prompt_id is empty: pass the job_id/prompt_id returned by a generation tool")
  .max(200)
  .describe("The job handle returned by a generation tool (job_id and prompt_id are the same value).");

export const waitSecondsArg = z
  .number()
  .min(0)
  .max(55)
  .optional()
  .describe(
    "How long to wait for the job to finish before returning its handle (seconds, 0-55). Default: the server's COMFY_MCP_WAIT_SECONDS (45).",
  );

export const backendArg = z
  .string()
  .trim()
  .min(1)
  .max(32)
  .optional()
  .describe(
    "Run on this ComfyUI backend (a name from list_backends) instead of letting the gateway choose the least busy one that has the models.",
  );

export const resubmitArg = z
  .boolean()
  .optional()
  .describe(
    "If the backend running the job goes down, move the job to another backend that can run it instead of reporting it lost. Default false. Not possible for jobs with input media.",
  );

const assetSchema = z.object({
  asset_id: z.string().describe("Opaque id of this output file; pass it to asset tools."),
  job_id: z.string(),
  prompt_id: z.string(),
  node_id: z.string().describe("The ComfyUI node that wrote the file."),
  filename: z.string(),
  subfolder: z.string(),
  folder_type: z.string().describe("output, or temp for previews (deleted when ComfyUI restarts)."),
  output_key: z.string(),
  mime_type: z.string(),
  kind: z.enum(["image", "video", "audio", "latent", "other"]),
  animated: z.boolean(),
  width: z.number().int().nullable(),
  height: z.number().int().nullable(),
  bytes_size: z.number().int().nullable(),
  workflow_id: z.string(),
  tool: z.string(),
  created_at: z.string(),
  expires_at: z.string().nullable().describe("When this record is forgotten (ASSET_TTL_HOURS); null = kept."),
  duration: z.number().nullable().describe("Seconds, for audio and video."),
  session: z.string().nullable(),
  backend: z.string().describe("The ComfyUI backend that made the file and holds it."),
  resource_uri: z.string().describe("MCP resource URI of the asset."),
  download_url: z.string().describe("Signed, short-lived URL of the full file, served through the gateway."),
});

export const jobResultSchema = z.object({
  status: z.enum(["submitting", "queued", "running", "completed", "failed", "cancelled", "lost"]),
  job_id: z.string(),
  prompt_id: z.string(),
  workflow_id: z.string(),
  tool: z.string(),
  message: z.string().describe("What happened and what to do next."),
  params: z.record(z.string(), z.unknown()),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  error: z
    .looseObject({ kind: z.string(), message: z.string() })
    .optional()
    .describe("Only when the job failed or was lost (an `error` key means it did not succeed)."),
  cancel_reason: z.string().optional().describe("Only for a cancelled job: how it was stopped."),
  completed_via: z
    .enum(COMPLETION_PATHS)
    .nullable()
    .describe(
      "Which path settled the job: 'event' (ComfyUI's WebSocket, the normal path) or a safety net (reconcile, reconnect, get_job, orphan_check) that found it done; also cancel, submission, failover. Null while open.",
    ),
  dropped_outputs: z
    .string()
    .nullable()
    .describe("Set when ComfyUI ran only part of the workflow: which outputs it dropped and why."),
  progress: z.looseObject({ fraction: z.number(), message: z.string() }).nullable(),
  assets: z.array(assetSchema),
  backend: z.string().describe("The ComfyUI backend the job runs on (list_backends)."),
  attempts: z
    .number()
    .int()
    .describe("Submissions so far: 2 or more when the job was moved off a backend that went down."),
  backend_reason: z.string().optional().describe("Why the gateway chose this backend."),
  // The first asset's fields at the top level, as the original server returned them.
  asset_id: z.string().optional(),
  filename: z.string().optional(),
  subfolder: z.string().optional(),
  folder_type: z.string().optional(),
  mime_type: z.string().optional(),
  width: z.number().int().nullable().optional(),
  height: z.number().int().nullable().optional(),
  bytes_size: z.number().int().nullable().optional(),
  asset_url: z.string().optional().describe("The first asset's download_url (the original server's field name)."),
  image_url: z.string().optional().describe("Same as asset_url, kept for compatibility."),
  param_sources: z
    .record(z.string(), z.enum(["call", "runtime", "persisted", "env", "workflow", "built-in", "random", "replayed"]))
    .optional()
    .describe(
      "Where each parameter value came from: your call, an environment default, the workflow's default, a built-in default, a random seed, or replayed by regenerate.",
    ),
  ignored_overrides: z
    .record(z.string(), z.string())
    .optional()
    .describe("run_workflow: overrides the workflow has no parameter for, and why."),
  regenerated_from: z.string().optional().describe("regenerate: the asset this result replays."),
});

export function assetUri(asset: Pick<AssetView, "asset_id">): string {
  return `comfy://assets/${asset.asset_id}`;
}

/** Signed download URLs for assets, keyed by asset id. */
export async function downloadLinks(tools: ToolContext, assets: AssetView[]): Promise<Record<string, string>> {
  const links = await Promise.all(
    assets.map(
      async (asset) =>
        [
          asset.asset_id,
          (
            await signedDownloadUrl(
              tools.env,
              tools.config.publicUrl,
              tools.principal,
              asset.asset_id,
              tools.config.downloadTtlSeconds,
            )
          ).url,
        ] as const,
    ),
  );
  return Object.fromEntries(links);
}

export async function jobResult(tools: ToolContext, job: JobView, message: string): Promise<Record<string, unknown>> {
  const links = await downloadLinks(tools, job.assets);
  const assets = job.assets.map((asset) => ({
    ...asset,
    resource_uri: assetUri(asset),
    download_url: links[asset.asset_id]!,
  }));
  const first = assets[0];
  // The original server's convention, which prompts rely on: an `error` key means the call failed.
  const { error, ...rest } = job;
  const failed = job.status === "failed" || job.status === "lost";
  return {
    ...rest,
    ...(failed && error && { error }),
    ...(job.status === "cancelled" && { cancel_reason: error?.message ?? "Cancelled." }),
    message,
    assets,
    ...(first && {
      asset_id: first.asset_id,
      filename: first.filename,
      subfolder: first.subfolder,
      folder_type: first.folder_type,
      mime_type: first.mime_type,
      width: first.width,
      height: first.height,
      bytes_size: first.bytes_size,
      asset_url: first.download_url,
      image_url: first.download_url,
    }),
  };
}

/** One `resource_link` per asset, so clients can fetch or show outputs without base64 in results. */
export function assetLinks(job: JobView): ContentBlock[] {
  return job.assets.map((asset) => ({
    type: "resource_link" as const,
    uri: assetUri(asset),
    name: asset.filename,
    mimeType: asset.mime_type,
    description: `${asset.kind}${asset.width && asset.height ? ` ${asset.width}x${asset.height}` : ""} from ${asset.workflow_id} (job ${asset.job_id})`,
  }));
}

/** The sentence an agent reads first: what state the job is in and what to call next. */
export function describeJob(job: JobView): string {
  switch (job.status) {
    case "completed":
      return `Job completed with ${job.assets.length} asset${job.assets.length === 1 ? "" : "s"}.`;
    case "failed":
      return `Job failed: ${job.error?.message ?? "unknown error"}`;
    case "cancelled":
      return `Job was cancelled${job.error?.message ? `: ${job.error.message}` : "."}`;
    case "lost":
      return job.error?.message ?? "ComfyUI lost this job; submit it again.";
    default:
      return `Job is ${job.status}${job.progress ? ` (${job.progress.message})` : ""}. Call get_job(prompt_id='${job.job_id}') to wait for it, or cancel_job to stop it.`;
  }
}
