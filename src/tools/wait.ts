/**
 * Bounded waiting on a job with MCP progress notifications. The studio streams progress and a
 * final line; we stop reading when the job settles, the budget runs out or the client goes away
 * (the job itself keeps running; its handle is returned). A node can run for minutes without a
 * single event (model load, VAE decode, video encode), so while the job runs a heartbeat repeats
 * the last progress with the time elapsed at least every HEARTBEAT_MS: clients that reset their
 * timeout on progress (the SDKs' `resetTimeoutOnProgress`) keep waiting, and people see it alive.
 */
import type { ServerContext } from "@modelcontextprotocol/server";
import type { JobProgress, JobView } from "../studio/records";
import type { WatchEvent } from "../studio/studio";
import type { ToolContext } from "./context";

export interface WaitOutcome {
  job: JobView | undefined;
  /** True when the job was still open when the wait ended. */
  open: boolean;
}

/** Longest silence between two progress notifications while a job runs. */
export const HEARTBEAT_MS = 5_000;

export async function waitForJob(
  tools: ToolContext,
  ctx: ServerContext,
  jobId: string,
  waitMs: number,
  /** When the job was submitted (ms), for the elapsed time in heartbeats. */
  since: number = Date.now(),
): Promise<WaitOutcome> {
  const progress = progressReporter(ctx, since);
  const heartbeat = setInterval(() => void progress.heartbeat(), 250);
  try {
    return await follow(tools, ctx, jobId, waitMs, progress);
  } finally {
    clearInterval(heartbeat);
  }
}

async function follow(
  tools: ToolContext,
  ctx: ServerContext,
  jobId: string,
  waitMs: number,
  progress: ReturnType<typeof progressReporter>,
): Promise<WaitOutcome> {
  const deadline = Date.now() + waitMs;
  const signal = ctx.mcpReq.signal;
  while (Date.now() < deadline && !signal.aborted) {
    const final = await readWatch(tools, jobId, deadline - Date.now(), signal, progress.report).catch(() => undefined);
    if (final === "missing") return { job: undefined, open: false };
    if (final) {
      await progress.done(final);
      return { job: final, open: false };
    }
    // The stream ended without a final line: budget spent, client gone, or the studio restarted.
    if (Date.now() < deadline && !signal.aborted) await sleep(Math.min(250, deadline - Date.now()));
  }
  const job = await tools.studio.getJob(jobId);
  return { job, open: job !== undefined && !["completed", "failed", "cancelled", "lost"].includes(job.status) };
}

async function readWatch(
  tools: ToolContext,
  jobId: string,
  budgetMs: number,
  signal: AbortSignal,
  onProgress: (progress: JobProgress) => Promise<void>,
): Promise<JobView | "missing" | undefined> {
  const stream = await tools.studio.watch(jobId);
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  const stop = () => void reader.cancel().catch(() => undefined);
  const timer = setTimeout(stop, Math.max(0, budgetMs));
  signal.addEventListener("abort", stop, { once: true });
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return undefined;
      buffer += value;
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (!line) continue; // the studio's keepalive
        const event = JSON.parse(line) as WatchEvent;
        if (event.type === "final") return event.job;
        if (event.type === "missing") return "missing";
        await onProgress(event.progress);
      }
    }
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", stop);
    stop();
  }
}

/**
 * MCP requires `progress` to increase on every notification; messages may repeat a fraction, and a
 * heartbeat nudges it by a thousandth (a ten-minute silent node costs 0.12 of a percent).
 */
function progressReporter(ctx: ServerContext, since: number) {
  const token = ctx.mcpReq._meta?.progressToken;
  let last = -1;
  let lastSentAt = Date.now();
  let lastMessage = "waiting for ComfyUI";
  let ended = false;
  const send = async (percent: number, message: string) => {
    if (token === undefined) return;
    const rounded = Math.round(percent * 1000) / 1000;
    const progress = rounded > last ? rounded : Math.round((last + 0.001) * 1000) / 1000;
    if (progress <= last || progress > 100) return;
    last = progress;
    lastSentAt = Date.now();
    await ctx.mcpReq
      .notify({ method: "notifications/progress", params: { progressToken: token, progress, total: 100, message } })
      .catch(() => undefined);
  };
  return {
    report: (progress: JobProgress) => {
      lastMessage = progress.message;
      return send(Math.min(99, progress.fraction * 100), progress.message);
    },
    heartbeat: () => {
      if (ended || Date.now() - lastSentAt < HEARTBEAT_MS) return;
      const elapsed = Math.round((Date.now() - since) / 1000);
      return send(Math.min(99.9, Math.max(last, 0)), `${lastMessage}, ${elapsed} s elapsed`);
    },
    done: (job: JobView) => {
      ended = true;
      return send(100, job.status === "completed" ? `completed: ${job.assets.length} asset(s)` : job.status);
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
