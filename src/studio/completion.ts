/**
 * Completing a job from ComfyUI's authoritative record of it (`GET /history/{id}`): outputs become
 * assets (each probed with one small ranged read for its size, dimensions and duration), an error or
 * an interrupt becomes the job's outcome, and the path that got here is recorded. However many
 * paths ask at once (an event, the alarm, a get_job), history is read and the job settled once.
 */
import { readBytes, type ComfyClient } from "../comfy/client";
import { probeDuration } from "../comfy/duration";
import { executionError } from "../comfy/errors";
import { PROBE_BYTES, probeDimensions } from "../comfy/media";
import { collectOutputs, type OutputItem } from "../comfy/outputs";
import type { ExecutionErrorPayload, HistoryEntry } from "../comfy/types";
import type { AssetStore, ProbedOutput } from "./assets";
import type { Endpoint } from "./endpoints";
import { type JobStore, toJobError } from "./jobs";
import { type CompletedVia, type JobError, type JobStatus, TERMINAL } from "./records";

/**
 * ComfyUI writes history before it sends the "done" event, but a proxy or a slow disk can still
 * make the first read come back empty: the event path retries for about 1.5 s before leaving the
 * job to the alarm.
 */
const HISTORY_RETRY_DELAYS_MS = [0, 50, 100, 200, 400, 800];
/** A job that finished this long ago unheard on an open socket means the socket is deaf. */
const DEAF_AFTER_MS = 2_000;

export class Completion {
  private readonly running = new Map<string, Promise<void>>();

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly jobs: JobStore,
    private readonly assets: AssetStore,
    private readonly endpointOf: (backend: string) => Endpoint | undefined,
    private readonly afterwards: () => Promise<void>,
  ) {}

  /** Completes the job from `known` or a fresh history read; a no-op while history has no entry. */
  finalize(jobId: string, via: CompletedVia, known?: HistoryEntry): Promise<void> {
    let running = this.running.get(jobId);
    if (!running) {
      running = this.complete(jobId, via, known).finally(() => this.running.delete(jobId));
      this.running.set(jobId, running);
    }
    return running;
  }

  /** Resolves when a completion of this job in progress (if any) is done. */
  settling(jobId: string): Promise<void> | undefined {
    return this.running.get(jobId);
  }

  private async complete(jobId: string, via: CompletedVia, known?: HistoryEntry): Promise<void> {
    const endpoint = this.endpointOf(this.jobs.row(jobId)?.backend ?? "");
    let entry = known;
    const delays = via === "event" ? HISTORY_RETRY_DELAYS_MS : [0];
    for (const delay of delays) {
      if (entry || !endpoint) break;
      if (delay) await sleep(delay);
      entry = await endpoint.client.history(jobId, { timeoutMs: 5_000 }).catch(() => undefined);
    }
    const row = this.jobs.row(jobId);
    // No entry yet (or ComfyUI unreachable): the alarm will try again.
    if (!entry || !endpoint || !row || TERMINAL.has(row.status as JobStatus)) return;
    const items = collectOutputs(entry.outputs);
    const probed = await Promise.all(items.map((item) => probe(endpoint.client, item)));
    const messages = entry.status?.messages ?? [];
    const { status, error } = outcome(entry, messages, probed.length);
    const finishedAt = producedAt(messages);
    this.ctx.storage.transactionSync(() => {
      this.assets.insert(row, probed, finishedAt);
      this.jobs.recordHistory(jobId, JSON.stringify(entry));
      this.jobs.settle(jobId, status, error, via);
    });
    if (via !== "event") this.checkHearing(endpoint, finishedAt, via);
    await this.afterwards();
  }

  /**
   * A job that finished well before a fallback found it, while the socket was open the whole time:
   * ComfyUI is not sending this socket its events (it unregistered it, comfyui-api.md §8.1).
   * Reconnecting under the same id registers it again.
   */
  private checkHearing(endpoint: Endpoint, finishedAt: number, via: CompletedVia): void {
    const openedAt = endpoint.socket.openedAt;
    if (!openedAt || openedAt > finishedAt || Date.now() - finishedAt < DEAF_AFTER_MS) return;
    console.warn(
      `backend '${endpoint.name}': a job finished unheard on an open socket (found by ${via}); reconnecting`,
    );
    endpoint.socket.recycle("deaf: a job finished without its events");
  }
}

function outcome(
  entry: HistoryEntry,
  messages: [string, Record<string, unknown>][],
  outputs: number,
): { status: JobStatus; error: JobError | null } {
  const failed = entry.status?.status_str === "error" || entry.status?.completed === false;
  if (failed && messages.some(([name]) => name === "execution_interrupted")) {
    return {
      status: "cancelled",
      error: { kind: "interrupted", message: "The job was interrupted in ComfyUI before it finished." },
    };
  }
  if (failed) {
    const payload = messages.find(([name]) => name === "execution_error")?.[1] as
      | Partial<ExecutionErrorPayload>
      | undefined;
    return { status: "failed", error: toJobError(executionError(payload ?? {})) };
  }
  if (outputs === 0) {
    return {
      status: "failed",
      error: {
        kind: "no_outputs",
        message: "ComfyUI finished the job but it produced no output files. Does the workflow end in a Save node?",
      },
    };
  }
  return { status: "completed", error: null };
}

/** Size and duration from the file's own header, total bytes from Content-Range: one small ranged GET. */
async function probe(client: ComfyClient, item: OutputItem): Promise<ProbedOutput> {
  try {
    const response = await client.view(item, { range: `bytes=0-${PROBE_BYTES - 1}`, timeoutMs: 10_000 });
    const head = await readBytes(response, "/view", 10_000);
    const total = Number(
      response.headers.get("Content-Range")?.split("/")[1] ?? response.headers.get("Content-Length") ?? head.length,
    );
    const bytes = Number.isFinite(total) ? total : null;
    const size = item.kind === "image" || item.kind === "video" ? probeDimensions(head) : undefined;
    const duration = item.kind === "audio" || item.kind === "video" ? probeDuration(head, bytes, item.mime_type) : null;
    return { ...item, width: size?.width ?? null, height: size?.height ?? null, bytes, duration };
  } catch {
    return { ...item, width: null, height: null, bytes: null, duration: null };
  }
}

/**
 * When ComfyUI finished the job (its last status message's ms timestamp), so assets list in the
 * order the GPU produced them even when several jobs are registered concurrently; the gateway's
 * clock when ComfyUI's is missing or implausible (more than a day off).
 */
function producedAt(messages: [string, Record<string, unknown>][]): number {
  const now = Date.now();
  const stamp = [...messages].reverse().find(([, data]) => typeof data?.timestamp === "number")?.[1].timestamp as
    | number
    | undefined;
  return stamp !== undefined && Math.abs(stamp - now) < 86_400_000 ? stamp : now;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
