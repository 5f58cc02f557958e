/**
 * What the studio knows of its running jobs in memory: a progress tracker per open job, the watch
 * streams of the tool calls waiting on it, and the promises of callers waiting for it to end. None
 * of this survives a restart, and none of it needs to: trackers are rebuilt from the job rows, and
 * waiting tool calls re-attach (tools/wait.ts).
 */
import type { BinaryFrame } from "../comfy/frames";
import type { ComfyEvent, ComfyGraph } from "../comfy/types";
import { ProgressTracker } from "./progress";
import type { JobProgress, JobView } from "./records";

/** One line of a watch stream (NDJSON; blank lines are keepalives). */
export type WatchEvent =
  | { type: "progress"; progress: NonNullable<JobView["progress"]> }
  | { type: "final"; job: JobView }
  | { type: "missing" };

const KEEPALIVE_MS = 1_000;
const KEEPALIVE = new TextEncoder().encode("\n");

export class LiveJobs {
  private readonly trackers = new Map<string, ProgressTracker>();
  /** The backend each tracked job runs on: frames without a prompt id belong to its running job. */
  private readonly trackedOn = new Map<string, string>();
  private readonly watchers = new Map<string, Set<WritableStreamDefaultWriter<Uint8Array>>>();
  private readonly waiting = new Map<string, Array<() => void>>();
  private readonly encoder = new TextEncoder();

  /** Starts (or restarts, after a move to another backend) tracking a job's progress. */
  track(jobId: string, graph: ComfyGraph, backend: string): ProgressTracker {
    const tracker = new ProgressTracker(Object.keys(graph).length, (nodeId) => graph[nodeId]?.class_type);
    this.trackers.set(jobId, tracker);
    this.trackedOn.set(jobId, backend);
    return tracker;
  }

  tracker(jobId: string): ProgressTracker | undefined {
    return this.trackers.get(jobId);
  }

  /**
   * A stream of NDJSON `WatchEvent`s for `job` as known now: its progress, every change, then one
   * `final` line. The caller bounds the wait by cancelling the stream; the job keeps running.
   */
  watch(jobId: string, job: JobView | undefined, terminal: boolean): ReadableStream<Uint8Array> {
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const writer = writable.getWriter();
    if (!job || terminal) {
      this.write(writer, job ? { type: "final", job } : { type: "missing" });
      writer.close().catch(() => undefined);
      return readable;
    }
    let set = this.watchers.get(jobId);
    if (!set) this.watchers.set(jobId, (set = new Set()));
    set.add(writer);
    // A blank line each second: a watch stream left idle through a long silent node delivered its
    // next line 15-20 ms late (measured under workerd), and that next line is usually the result.
    const keepalive = setInterval(() => {
      writer.write(KEEPALIVE).catch(() => clearInterval(keepalive));
    }, KEEPALIVE_MS);
    writer.closed.then(
      () => clearInterval(keepalive),
      () => clearInterval(keepalive),
    );
    if (job.progress) this.write(writer, { type: "progress", progress: job.progress });
    return readable;
  }

  /** A per-prompt event of a job this studio owns. */
  apply(jobId: string, event: ComfyEvent): void {
    this.broadcast(jobId, this.trackers.get(jobId)?.apply(event));
  }

  /** A queue-length change on a backend: the "queued" message of every job there that has not started. */
  queueChanged(backend: string, event: ComfyEvent): void {
    for (const [jobId, tracker] of this.trackers) {
      if (this.trackedOn.get(jobId) === backend) this.broadcast(jobId, tracker.apply(event));
    }
  }

  /** Type 4 previews name their prompt; other frames belong to whichever job is running. */
  frame(backend: string, frame: BinaryFrame): void {
    for (const [jobId, tracker] of this.trackers) {
      if (this.trackedOn.get(jobId) !== backend) continue;
      const mine =
        frame.kind === "preview" && frame.prompt_id ? frame.prompt_id === jobId : tracker.runningNode !== undefined;
      if (mine) this.broadcast(jobId, tracker.applyFrame(frame));
    }
  }

  broadcast(jobId: string, progress: JobProgress | undefined): void {
    if (!progress) return;
    for (const writer of this.watchers.get(jobId) ?? []) this.write(writer, { type: "progress", progress });
  }

  /** The job is terminal: every watcher gets its final line, every waiter is released. */
  ended(job: JobView): void {
    this.trackers.delete(job.job_id);
    this.trackedOn.delete(job.job_id);
    for (const writer of this.watchers.get(job.job_id) ?? []) {
      this.write(writer, { type: "final", job });
      writer.close().catch(() => undefined);
    }
    this.watchers.delete(job.job_id);
    for (const resolve of this.waiting.get(job.job_id) ?? []) resolve();
    this.waiting.delete(job.job_id);
  }

  /** Resolves when the job ends, or after `timeoutMs`, whichever is first. */
  whenEnded(jobId: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      const list = this.waiting.get(jobId) ?? [];
      list.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.waiting.set(jobId, list);
    });
  }

  private write(writer: WritableStreamDefaultWriter<Uint8Array>, event: WatchEvent): void {
    // A reader that went away (client disconnected) only loses its own stream, never the job.
    writer.write(this.encoder.encode(`${JSON.stringify(event)}\n`)).catch(() => {
      for (const set of this.watchers.values()) set.delete(writer);
    });
  }
}
