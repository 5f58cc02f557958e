/**
 * The studio: one SQLite-backed Durable Object per user. It owns the user's jobs and assets and the
 * connections to the ComfyUI backends its jobs run on. This file is its RPC surface and the intake
 * of ComfyUI's events; the work is done by the parts it wires together:
 *   - submission.ts  sends jobs (and moves them to another backend when theirs is away);
 *   - live.ts        progress trackers and the watch streams of waiting tool calls;
 *   - completion.ts  completes a job from ComfyUI's history, once, recording which path did;
 *   - reconcile.ts   the safety nets: the alarm's history/queue checks, failover, orphans;
 *   - jobs.ts, assets.ts, defaults.ts  the SQLite records; endpoints.ts  one socket per backend.
 */
import { DurableObject } from "cloudflare:workers";
import type { BinaryFrame } from "../comfy/frames";
import type { ComfyEvent } from "../comfy/types";
import { readConfig } from "../config";
import { coordinator } from "../pool/backends";
import type { ActivityKind } from "../pool/activity";
import { type AssetPage, type AssetQuery, AssetStore, decodeCursor } from "./assets";
import { Completion, afterResult } from "./completion";
import { DefaultsStore, type DefaultsLayers } from "./defaults";
import { Endpoints } from "./endpoints";
import { gone, JobStore, toJobError } from "./jobs";
import { LiveJobs } from "./live";
import { Reconciler } from "./reconcile";
import {
  type AssetView,
  type JobError,
  type JobStatus,
  type JobView,
  type Scalar,
  type SubmitRequest,
  TERMINAL,
} from "./records";
import { adoptLegacyRecords, migrate } from "./schema";
import { type Quota, type StudioResult, Submission, type Usage } from "./submission";

export type { WatchEvent } from "./live";
export type { Quota, StudioResult, Usage } from "./submission";

const CANCEL_CONFIRM_MS = 10_000;

export class Studio extends DurableObject<Env> {
  private readonly reconcileMs: number;
  private readonly assets: AssetStore;
  private readonly defaults: DefaultsStore;
  private readonly live = new LiveJobs();
  private readonly jobs: JobStore;
  private readonly endpoints: Endpoints;
  private readonly completion: Completion;
  private readonly submission: Submission;
  private readonly reconciler: Reconciler;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    migrate(sql);
    const config = readConfig(env);
    const first = config.backends[0]?.name;
    if (first) adoptLegacyRecords(sql, first);
    this.reconcileMs = config.reconcileMs;
    this.assets = new AssetStore(sql, config.assetTtlMs);
    this.defaults = new DefaultsStore(sql);
    this.jobs = new JobStore(sql, this.assets, this.live, (row, via) => {
      this.completion.forget(row.id);
      this.report(row.backend, `completed:${via}`);
    });
    this.endpoints = new Endpoints(sql, config.backends, {
      onEvent: (backend, event) => this.onEvent(backend, event),
      onFrame: (backend, frame) => this.onFrame(backend, frame),
      onConnected: (backend, reconnect) => {
        if (reconnect) this.report(backend, "reconnect");
        // Events may have been missed while disconnected (or before this object woke): check open
        // jobs against history at once.
        this.ctx.waitUntil(this.reconciler.openJobs("reconnect"));
      },
      onDropped: (backend) => this.report(backend, "socket_drop"),
      wanted: (backend) => this.jobs.openCount(backend) > 0,
    });
    const afterwards = () => this.scheduleAlarm();
    this.completion = new Completion(ctx, this.jobs, this.assets, (name) => this.endpoints.get(name), afterwards);
    this.submission = new Submission(
      env,
      ctx,
      this.jobs,
      this.live,
      this.endpoints,
      config.backends.length,
      afterwards,
    );
    this.reconciler = new Reconciler(env, ctx, sql, this.jobs, this.endpoints, this.completion, this.submission, {
      reconcileMs: config.reconcileMs,
      graceMs: config.backendGraceMs,
      backendCount: config.backends.length,
    });
  }

  // --- RPC surface ----------------------------------------------------------------------------

  /**
   * Records the job, then submits it with the socket's clientId so its events come to us; refused
   * first when it would exceed the quota (counted here, atomically, never by the Worker).
   */
  submit(request: SubmitRequest, quota?: Quota): Promise<StudioResult> {
    return this.submission.submit(request, quota);
  }

  /**
   * Whether one more job would be refused now: an early answer before input media are fetched and
   * uploaded. Advisory only; `submit` counts again, atomically.
   */
  checkQuota(quota: Quota): JobError | undefined {
    return this.submission.overQuota(quota);
  }

  /** This user's jobs open now and submitted in the last minute (get_queue_status). */
  usage(): Usage {
    return this.submission.usage();
  }

  /**
   * A stream of NDJSON `WatchEvent`s: the current progress, every change, then one `final` line.
   * The caller bounds the wait by cancelling the stream; the job itself keeps running.
   */
  watch(jobId: string): ReadableStream<Uint8Array> {
    const job = this.jobs.view(jobId);
    return this.live.watch(jobId, job, !!job && TERMINAL.has(job.status));
  }

  /**
   * The job as known now. An open job is checked against ComfyUI first when events may have been
   * missed: no socket, or nothing heard about it for a reconcile interval. With the socket up and
   * the job fresh, events are trusted: a `/queue` read per call would cost O(queue) on a busy GPU.
   */
  async getJob(jobId: string): Promise<JobView | undefined> {
    const row = this.jobs.row(jobId);
    if (!row) return undefined;
    const stale = !this.endpoints.get(row.backend)?.socket.clientId || Date.now() - row.updated_at >= this.reconcileMs;
    if (!TERMINAL.has(row.status as JobStatus) && stale) {
      await this.reconciler.backend(row.backend, [row], "get_job");
      await this.completion.settling(jobId);
    }
    return this.jobs.view(jobId);
  }

  /** Deletes a pending prompt or interrupts the running one, then confirms the outcome. */
  async cancel(jobId: string): Promise<StudioResult | undefined> {
    const row = this.jobs.row(jobId);
    if (!row) return undefined;
    if (TERMINAL.has(row.status as JobStatus)) return { ok: true, job: this.jobs.view(jobId)! };
    const endpoint = this.endpoints.get(row.backend);
    if (!endpoint) return { ok: false, error: gone(row.backend) };
    try {
      const queue = await endpoint.client.queue();
      if (queue.queue_pending.some((item) => item[1] === jobId)) {
        await endpoint.client.deleteFromQueue([jobId]);
        // A deleted prompt never reaches history (GET_history_prompt_id__deleted.json): settle here.
        const after = await endpoint.client.queue();
        if (!after.queue_running.some((item) => item[1] === jobId)) {
          const reason = "Cancelled before it started: removed from ComfyUI's queue.";
          this.jobs.settle(jobId, "cancelled", { kind: "cancelled", message: reason }, "cancel");
          return { ok: true, job: this.jobs.view(jobId)! };
        }
      }
      // Running (or just started): interrupt only this prompt, then wait for ComfyUI to confirm.
      const ended = this.live.whenEnded(jobId, CANCEL_CONFIRM_MS);
      await endpoint.client.interrupt(jobId);
      await this.reconciler.check(endpoint, [this.jobs.row(jobId)!], "cancel").catch(() => undefined);
      await ended;
      return { ok: true, job: this.jobs.view(jobId)! };
    } catch (error) {
      return { ok: false, error: toJobError(error) };
    }
  }

  /** The exact graph a job submitted (for replaying it when its workflow file is gone). */
  jobGraph(jobId: string): string | undefined {
    return this.jobs.row(jobId)?.graph;
  }

  getAsset(assetId: string): AssetView | undefined {
    return this.assets.get(assetId, Date.now());
  }

  /** Newest first, filtered, paged; `undefined` when the cursor is not one of ours. */
  listAssets(query: AssetQuery): AssetPage | undefined {
    if (query.cursor && !decodeCursor(query.cursor)) return undefined;
    return this.assets.list(query, Date.now());
  }

  /** Everything known about how an asset was made: the job's parameters, graph and ComfyUI history. */
  assetProvenance(
    assetId: string,
  ): { asset: AssetView; job: JobView; graph: string; history: string | null } | undefined {
    const asset = this.assets.get(assetId, Date.now());
    const row = asset && this.jobs.row(asset.job_id);
    if (!asset || !row) return undefined;
    return { asset, job: this.jobs.view(row.id)!, graph: row.graph, history: row.history };
  }

  defaultsLayers(): DefaultsLayers {
    return this.defaults.layers();
  }

  setDefaults(namespace: string, values: Record<string, Scalar | null>, persist: boolean): DefaultsLayers {
    this.defaults.set(namespace, values, persist);
    return this.defaults.layers();
  }

  /** Which of these ComfyUI prompt ids are this user's jobs (queue views hide everyone else's). */
  ownedJobs(promptIds: string[]): string[] {
    return promptIds.filter((id) => this.jobs.row(id) !== undefined);
  }

  /** Test and fault-drill hook: drop the ComfyUI sockets as a network failure would. */
  dropSocket(): void {
    for (const endpoint of this.endpoints.all()) endpoint.socket.dropForTest();
  }

  override async alarm(): Promise<void> {
    this.assets.purgeExpired(Date.now());
    await this.reconciler.round();
    await this.scheduleAlarm();
  }

  // --- events ---------------------------------------------------------------------------------

  private onEvent(backend: string, event: ComfyEvent): void {
    if (event.type === "status") {
      this.live.queueChanged(backend, event);
      return;
    }
    const promptId = event.data.prompt_id;
    if (typeof promptId !== "string") return;
    const row = this.jobs.row(promptId);
    // A backend that comes back may still run a job that has since moved elsewhere: not ours now.
    if (!row || TERMINAL.has(row.status as JobStatus) || row.backend !== backend) return;
    if (event.type === "execution_start" || (event.type === "executing" && event.data.node !== null)) {
      this.jobs.started(promptId);
    }
    const endpoint = this.endpoints.get(backend);
    if (endpoint) this.completion.hear(promptId, event, endpoint);
    // `executing {node: null}` is sent after history is written: the canonical "done" (§8.3).
    if (event.type === "executing" && event.data.node === null) {
      this.ctx.waitUntil(this.completion.finalize(promptId, "event"));
      return;
    }
    this.jobs.tracker(row); // rebuilt after a restart
    this.live.apply(promptId, event);
  }

  private onFrame(backend: string, frame: BinaryFrame): void {
    this.live.frame(backend, frame);
  }

  /** Counts socket and completion activity per backend at the pool (list_backends, /healthz). */
  private report(backend: string, kind: ActivityKind): void {
    this.ctx.waitUntil(
      afterResult().then(() =>
        coordinator(this.env)
          .record(backend, kind)
          .catch(() => undefined),
      ),
    );
  }

  /** The alarm runs while a job is open (reconciliation), while lost jobs may come back, and when the next asset expires. */
  private async scheduleAlarm(): Promise<void> {
    const candidates = [
      this.jobs.openCount() > 0 ? Date.now() + this.reconcileMs : null,
      this.reconciler.orphanCount() > 0 ? Date.now() + this.reconciler.orphanCheckMs : null,
      this.reconciler.nextSocketClose(),
      this.assets.nextExpiry(),
    ].filter((t): t is number => t !== null);
    if (candidates.length === 0) return;
    const due = Math.max(Date.now() + 50, Math.min(...candidates));
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > due || current < Date.now()) await this.ctx.storage.setAlarm(due);
  }
}
