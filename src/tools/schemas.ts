/** Output schemas shared by the job tools, with the result builders that fill them. */
import type { ContentBlock } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import { signedDownloadUrl } from "../assets/downloads";
import type { AssetView, JobView } from "../studio/records";
import type { ToolContext } from "./context";

export const promptIdArg = z
  .string()
  .trim()
  .min(1, "prompt_id is empty: pass the job_id/prompt_id returned by a generation tool")
  .max(200)
  .describe("The job_id (= prompt_id) a generation tool returned.");

export const waitSecondsArg = z.number().min(0).max(55).optional().describe("Max wait (s); then a job handle.");

// The name is checked against the configured backends, which says more than a length would.
export const backendArg = z.string().trim().optional().describe("Backend (list_backends).");

export const resubmitArg = z.boolean().optional().describe("Move if its backend dies.");

const JOB_STATUSES = ["submitting", "queued", "running", "completed", "failed", "cancelled", "lost"] as const;

/**
 * A job result, described once: get_job's output schema. Results carry the whole record (JobView
 * and AssetView in studio/records.ts); the schema types the fields a client acts on and names the
 * rest, since every byte of it goes into every agent's context on every turn.
 */
export const jobResultSchema = z.object({
  status: z.enum(JOB_STATUSES),
  job_id: z.string().describe("= prompt_id"),
  message: z.string(),
  assets: z
    .array(z.object({}))
    .describe("Each: asset_id, download_url, kind, mime_type, size. Also params, error, completed_via"),
});

/**
 * What the tools that start or stop a job return: the same job, pointing at get_job's schema. The
 * status values and the assets are described once, there: seven tools repeating them cost 900 B
 * of every tools/list.
 */
export const jobHandleSchema = z.object({ status: z.string(), job_id: z.string() }).describe("As get_job returns it.");

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
