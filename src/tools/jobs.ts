/**
 * Job tools: get_job (waits, registers results, reports failures as failures), get_queue_status
 * (ComfyUI's queue with only the caller's own prompts identified, and the caller's own usage
 * against its limits) and cancel_job (deletes a pending prompt or interrupts the running one, and
 * handles ComfyUI's empty-body 200s).
 */
import type { McpServer } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import type { QueueItem } from "../comfy/types";
import { type Limit, limitsFor, type UserLimits } from "../config";
import type { JobView } from "../studio/records";
import { failure, success } from "../mcp/results";
import { askAll } from "../pool/ask";
import { requireScope, type ToolContext } from "./context";
import { runTool } from "./run";
import {
  assetLinks,
  describeJob,
  jobHandleSchema,
  jobResult,
  jobResultSchema,
  promptIdArg,
  waitSecondsArg,
} from "./schemas";
import { waitForJob } from "./wait";
import { VIEW_META } from "../view/resource";

const notFound = (id: string) =>
  failure(
    `No job '${id}' in your studio. Pass the job_id (= prompt_id) returned by a generation tool; jobs submitted to ComfyUI by other means are not visible here.`,
  );

const queueSchema = z.array(z.object({})).describe("Each: position, number, mine, prompt_id (yours only), backend.");

// Schemas are built once per isolate: building them for every request was a third of a tools/list.
const getJobInput = z.object({ prompt_id: promptIdArg, wait_seconds: waitSecondsArg });

const cancelJobInput = z.object({ prompt_id: promptIdArg });

const getQueueStatusInput = z.object({});

const getQueueStatusOutput = z.object({
  status: z.literal("success"),
  running_count: z.number().int(),
  pending_count: z.number().int(),
  queue_running: queueSchema,
  queue_pending: z.array(z.object({})).describe("Like queue_running."),
  backends: z.array(z.object({})).describe("Each: name, state, counts, error."),
  your_usage: z
    .object({ open_jobs: z.number().int(), jobs_last_minute: z.number().int() })
    .describe("Also limits and warnings."),
  message: z.string(),
});

export function registerJobTools(server: McpServer, tools: ToolContext): void {
  server.registerTool(
    "get_job",
    {
      title: "Get a job's status and results",
      description:
        "A job's status by prompt_id: its assets when finished, ComfyUI's error when failed; wait_seconds waits with progress.",
      inputSchema: getJobInput,
      outputSchema: jobResultSchema,
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
      _meta: VIEW_META,
    },
    ({ prompt_id, wait_seconds }, ctx) =>
      runTool(async () => {
        requireScope(tools, "generate");
        let job: JobView | undefined = await tools.studio.getJob(prompt_id);
        if (!job) return notFound(prompt_id);
        if (wait_seconds && ["submitting", "queued", "running"].includes(job.status)) {
          job = (await waitForJob(tools, ctx, prompt_id, wait_seconds * 1000, Date.parse(job.created_at))).job ?? job;
        }
        return success(await jobResult(tools, job, describeJob(job)), assetLinks(job));
      }),
  );

  server.registerTool(
    "cancel_job",
    {
      title: "Cancel a job",
      description: "Cancel a job: removed from the queue if waiting, interrupted if running. Returns its state.",
      inputSchema: cancelJobInput,
      outputSchema: jobHandleSchema,
      annotations: { destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    ({ prompt_id }) =>
      runTool(async () => {
        requireScope(tools, "generate");
        const outcome = await tools.studio.cancel(prompt_id);
        if (!outcome) return notFound(prompt_id);
        if (!outcome.ok) return failure(outcome.error.message, { kind: outcome.error.kind });
        const job = outcome.job;
        const message =
          job.status === "cancelled"
            ? describeJob(job)
            : ["completed", "failed", "lost"].includes(job.status)
              ? `Nothing to cancel: the job had already ended (${job.status}).`
              : `Interrupt requested; ComfyUI has not confirmed yet (status ${job.status}). Call get_job to follow it.`;
        return success(await jobResult(tools, job, message), assetLinks(job));
      }),
  );

  server.registerTool(
    "get_queue_status",
    {
      title: "Show ComfyUI's queue",
      description:
        "How busy each backend is: running and pending prompts (yours with prompt_id), and your usage against your limits.",
      inputSchema: getQueueStatusInput,
      outputSchema: getQueueStatusOutput,
      annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    },
    (_args, ctx) =>
      runTool(async () => {
        requireScope(tools, "generate");
        const [answers, usage] = await Promise.all([
          askAll(tools.backends.all(), (comfy) => comfy.queue({ signal: ctx.mcpReq.signal })),
          tools.studio.usage(),
        ]);
        const limits = limitsFor(tools.config, tools.principal);
        const queues = answers.map((answer) => (answer.ok ? answer.value : { queue_running: [], queue_pending: [] }));
        const ids = queues.flatMap((queue) => [...queue.queue_running, ...queue.queue_pending].map((item) => item[1]));
        const owned = new Set(await tools.studio.ownedJobs(ids));
        const running: QueueEntry[] = [];
        const waiting: QueueEntry[] = [];
        const backends = answers.map((answer, index) => {
          const queue = queues[index]!;
          const backend = answer.backend;
          // queue_pending is the raw heap array, not sorted (comfyui-api.md §5).
          const pending = [...queue.queue_pending].sort((a, b) => a[0] - b[0]);
          const entry = (item: QueueItem, position: number): QueueEntry => ({
            position: position + 1,
            number: item[0],
            mine: owned.has(item[1]),
            prompt_id: owned.has(item[1]) ? item[1] : null,
            backend,
          });
          running.push(...queue.queue_running.map(entry));
          waiting.push(...pending.map(entry));
          return {
            name: backend,
            state: answer.ok ? ("up" as const) : ("down" as const),
            running_count: queue.queue_running.length,
            pending_count: pending.length,
            error: answer.ok ? null : answer.error,
          };
        });
        const down = backends.filter((b) => b.state === "down").map((b) => b.name);
        const mine = waiting
          .filter((e) => e.mine)
          .map((e) => `${e.position}${tools.backends.multiple ? ` on ${e.backend}` : ""}`);
        const message =
          (running.length === 0 && waiting.length === 0
            ? tools.backends.multiple
              ? "Every reachable backend is idle."
              : "ComfyUI is idle."
            : `${running.length} running, ${waiting.length} pending${mine.length ? ` (yours at position ${mine.join(", ")})` : ""}.`) +
          (down.length ? ` Unreachable: ${down.join(", ")}.` : "");
        return {
          status: "success" as const,
          running_count: running.length,
          pending_count: waiting.length,
          queue_running: running,
          queue_pending: waiting,
          backends,
          your_usage: { ...usage, limits: describeLimits(limits), warnings: limits.warnings },
          message: `${message} ${describeUsage(usage, limits)}`,
        };
      }),
  );
}

/** Each limit as the caller sees it: the value (null = unlimited) and the variable that sets it. */
function describeLimits(limits: UserLimits) {
  const entry = (limit: Limit) => ({ value: limit.value, variable: limit.variable });
  return {
    open_jobs: entry(limits.openJobs),
    jobs_per_minute: entry(limits.jobsPerMinute),
    megapixels_per_image: entry(limits.megapixels),
    video_megapixel_frames: entry(limits.videoMegapixelFrames),
    steps: entry(limits.steps),
    input_image_side: entry(limits.inputImageSide),
  };
}

function describeUsage(usage: { open_jobs: number; jobs_last_minute: number }, limits: UserLimits): string {
  const of = (limit: Limit) => (limit.value === null ? "" : ` of ${limit.value}`);
  return `You have ${usage.open_jobs}${of(limits.openJobs)} open job(s) and submitted ${usage.jobs_last_minute}${of(limits.jobsPerMinute)} in the last minute.`;
}

interface QueueEntry {
  position: number;
  number: number;
  mine: boolean;
  prompt_id: string | null;
  backend: string;
}
