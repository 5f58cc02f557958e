/**
 * Completing a job: outputs become assets (each probed with one small ranged read for its size,
 * dimensions and duration), an error or an interrupt becomes the job's outcome, and the path that
 * got here is recorded. However many paths ask at once (an event, the alarm, a get_job), the job is
 * settled once.
 *
 * The record is ComfyUI's history entry (`GET /history/{id}`). One exception keeps the normal path
 * fast: a successful run whose every event this socket heard, from `execution_start` to the done
 * event without a reconnect in between, already told everything history would (the `executed`
 * outputs, the status messages). It is settled from what was heard, with each file probed as soon
 * as its `executed` event named it, and history is read afterwards for the provenance record.
 */
import { readBytes, type ComfyClient } from "../comfy/client";
import { probeDuration } from "../comfy/duration";
import { executionError } from "../comfy/errors";
import { PROBE_BYTES, probeDimensions } from "../comfy/media";
import { collectOutputs, type OutputItem } from "../comfy/outputs";
import type { ComfyEvent, ExecutionErrorPayload, HistoryEntry, NodeOutput } from "../comfy/types";
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

/**
 * Bookkeeping that follows a settled job (its provenance record, the pool's activity counters)
 * waits this long, so it does not compete with the result on its way to the client: locally the
 * studio, the Worker and the pool share one thread, and the result crosses several turns of it.
 */
export const AFTER_RESULT_MS = 250;

export function afterResult(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, AFTER_RESULT_MS));
}
/** A job that finished this long ago unheard on an open socket means the socket is deaf. */
const DEAF_AFTER_MS = 2_000;
/** Events that go into a history entry's status messages (comfyui-api.md §9). */
const STATUS_MESSAGES = new Set([
  "execution_start",
  "execution_cached",
  "execution_success",
  "execution_error",
  "execution_interrupted",
]);

/** What the socket told about one run, from its start. */
interface HeardRun {
  /** The socket's connection count when the run started: any reconnect since means events were missed. */
  connection: number;
  outputs: Record<string, NodeOutput>;
  messages: [string, Record<string, unknown>][];
  succeeded: boolean;
  /** Probes started when `executed` named the file (it is complete by then), by folder/subfolder/name. */
  probes: Map<string, Promise<ProbedOutput>>;
}

export class Completion {
  private readonly running = new Map<string, Promise<void>>();
  private readonly heard = new Map<string, HeardRun>();

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

  /** A per-prompt event of an open job, as received on its backend's socket. */
  hear(jobId: string, event: ComfyEvent, endpoint: Endpoint): void {
    if (event.type === "execution_start") {
      this.heard.set(jobId, {
        connection: endpoint.socket.opens,
        outputs: {},
        messages: [],
        succeeded: false,
        probes: new Map(),
      });
    }
    const run = this.heard.get(jobId);
    if (!run) return;
    if (STATUS_MESSAGES.has(event.type)) run.messages.push([event.type, event.data]);
    if (event.type === "execution_success") run.succeeded = true;
    if (event.type === "executed" && typeof event.data.node === "string" && isRecord(event.data.output)) {
      const output = event.data.output as NodeOutput;
      run.outputs[event.data.node] = output;
      for (const item of collectOutputs({ [event.data.node]: output })) {
        const probing = probe(endpoint.client, item);
        probing.catch(() => undefined);
        run.probes.set(fileKey(item), probing);
      }
    }
  }

  /** The job was settled some other way (lost, cancelled, failed at submission): drop what was heard. */
  forget(jobId: string): void {
    if (!this.running.has(jobId)) this.heard.delete(jobId);
  }

  /** Resolves when a completion of this job in progress (if any) is done. */
  settling(jobId: string): Promise<void> | undefined {
    return this.running.get(jobId);
  }

  private async complete(jobId: string, via: CompletedVia, known?: HistoryEntry): Promise<void> {
    const endpoint = this.endpointOf(this.jobs.row(jobId)?.backend ?? "");
    const run = this.heard.get(jobId);
    this.heard.delete(jobId);
    const wholeRun =
      via === "event" && !known && endpoint && run?.succeeded && run.connection === endpoint.socket.opens;
    let entry: HistoryEntry | undefined = wholeRun ? heardEntry(run) : known;
    if (!entry && endpoint) entry = await readHistory(endpoint, jobId, via === "event" ? HISTORY_RETRY_DELAYS_MS : [0]);
    const row = this.jobs.row(jobId);
    // No entry yet (or ComfyUI unreachable): the alarm will try again.
    if (!entry || !endpoint || !row || TERMINAL.has(row.status as JobStatus)) return;
    const items = collectOutputs(entry.outputs);
    const probed = await Promise.all(
      items.map((item) => run?.probes.get(fileKey(item)) ?? probe(endpoint.client, item)),
    );
    const messages = entry.status?.messages ?? [];
    const { status, error } = outcome(entry, messages, probed.length);
    const finishedAt = producedAt(messages);
    this.ctx.storage.transactionSync(() => {
      this.assets.insert(row, probed, finishedAt);
      this.jobs.recordHistory(jobId, JSON.stringify(entry));
      this.jobs.settle(jobId, status, error, via);
    });
    if (via !== "event") this.checkHearing(endpoint, finishedAt, via);
    if (wholeRun) this.ctx.waitUntil(this.recordHistoryLater(jobId, endpoint));
    await this.afterwards();
  }

  /** The provenance record of a job settled from its events: ComfyUI's own entry, once it has it. */
  private async recordHistoryLater(jobId: string, endpoint: Endpoint): Promise<void> {
    await afterResult();
    const entry = await readHistory(endpoint, jobId, HISTORY_RETRY_DELAYS_MS);
    if (entry) this.jobs.recordHistory(jobId, JSON.stringify(entry));
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

/** ComfyUI's history entry of a job, tried after each delay until it has one; undefined if it never did. */
async function readHistory(endpoint: Endpoint, jobId: string, delays: number[]): Promise<HistoryEntry | undefined> {
  for (const delay of delays) {
    if (delay) await sleep(delay);
    const entry = await endpoint.client.history(jobId, { timeoutMs: 5_000 }).catch(() => undefined);
    if (entry) return entry;
  }
  return undefined;
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

/** A history entry made of what the socket heard (used until ComfyUI's own entry is read). */
function heardEntry(run: HeardRun): HistoryEntry {
  return {
    prompt: undefined as unknown as HistoryEntry["prompt"],
    outputs: run.outputs,
    status: { status_str: "success", completed: true, messages: run.messages },
    meta: { source: "events" },
  };
}

function fileKey(item: { type: string; subfolder: string; filename: string }): string {
  return `${item.type}/${item.subfolder}/${item.filename}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
