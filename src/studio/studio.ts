/**
 * The studio: one SQLite-backed Durable Object per user. It owns the user's jobs and assets and the
 * connections to the ComfyUI backends its jobs run on. Events arrive over one WebSocket per
 * backend; because events can be lost (socket drops, ComfyUI restarts, this object restarts), an
 * alarm reconciles every unfinished job against its backend's `GET /history/{id}` while any is
 * open, so nothing finished is ever lost and nothing is registered twice. A backend that stays
 * unreachable past the grace period has its jobs moved elsewhere (when the caller asked) or
 * declared lost; those are looked for again when it answers, and revived if it finished them.
 */
import { DurableObject } from "cloudflare:workers";
import { ComfyClient } from "../comfy/client";
import { ComfyError, executionError, validationError } from "../comfy/errors";
import type { BinaryFrame } from "../comfy/frames";
import { probeDuration } from "../comfy/duration";
import { PROBE_BYTES, probeDimensions } from "../comfy/media";
import { collectOutputs, type OutputItem } from "../comfy/outputs";
import type { ComfyEvent, ComfyGraph, ExecutionErrorPayload, HistoryEntry } from "../comfy/types";
import { readConfig } from "../config";
import type { BackendConfig } from "../pool/config";
import { coordinator } from "../pool/backends";
import type { RouteRequest } from "../pool/routing";
import { AssetStore, decodeCursor, type AssetPage, type AssetQuery, type ProbedOutput } from "./assets";
import { DefaultsStore, type DefaultsLayers } from "./defaults";
import { ProgressTracker } from "./progress";
import {
  TERMINAL,
  jobView,
  type AssetView,
  type JobError,
  type JobProgress,
  type JobRow,
  type JobStatus,
  type Scalar,
  type JobView,
  type SubmitRequest,
} from "./records";
import { adoptLegacyRecords, migrate } from "./schema";
import { ComfySocket } from "./socket";

/** One line of a watch stream (NDJSON). */
export type WatchEvent =
  | { type: "progress"; progress: NonNullable<JobView["progress"]> }
  | { type: "final"; job: JobView }
  | { type: "missing" };

export type StudioResult = { ok: true; job: JobView } | { ok: false; error: JobError };

const OPEN_STATUSES = "('submitting', 'queued', 'running')";
/** Reconciliations a job may be absent from both queue and history before it is declared lost. */
const LOST_AFTER_CHECKS = 2;
const HISTORY_RETRIES = 3;
const CANCEL_CONFIRM_MS = 10_000;
const QUEUE_SNAPSHOT_MS = 500;
/** A job is moved to another backend at most this many times. */
const MAX_ATTEMPTS = 3;
/** Jobs lost with their backend are looked for again at most this often, for this long, once it answers. */
const ORPHAN_CHECK_MAX_MS = 15_000;
const ORPHAN_WINDOW_MS = 6 * 3_600_000;

type QueueSnapshot = Awaited<ReturnType<ComfyClient["queue"]>>;

/** This studio's line to one backend: its client, its event socket and what it has seen of it. */
interface Endpoint {
  name: string;
  client: ComfyClient;
  socket: ComfySocket;
  /** Since when every call to it failed (unset while it answers). */
  unreachableSince?: number;
  lastError?: string;
  lastOrphanCheck: number;
  recentQueue?: { at: number; value: Promise<QueueSnapshot> };
}

export class Studio extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly backends: BackendConfig[];
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly reconcileMs: number;
  private readonly graceMs: number;
  /** Three reconcile intervals (15 s at most): a returning backend is asked soon, a dead one rarely. */
  private readonly orphanCheckMs: number;
  private readonly assets: AssetStore;
  private readonly defaults: DefaultsStore;
  private readonly trackers = new Map<string, ProgressTracker>();
  /** The backend each tracked job runs on: frames without a prompt id belong to its running job. */
  private readonly trackedOn = new Map<string, string>();
  private readonly watchers = new Map<string, Set<WritableStreamDefaultWriter<Uint8Array>>>();
  private readonly settled = new Map<string, Array<() => void>>();
  private readonly finalizing = new Map<string, Promise<void>>();
  private readonly encoder = new TextEncoder();
  /** Submissions in flight: the socket they are about to use must not be closed as idle. */
  private submitting = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    migrate(this.sql);
    const config = readConfig(env);
    this.backends = config.backends;
    this.reconcileMs = config.reconcileMs;
    this.graceMs = config.backendGraceMs;
    this.orphanCheckMs = Math.min(ORPHAN_CHECK_MAX_MS, 3 * config.reconcileMs);
    this.assets = new AssetStore(this.sql, config.assetTtlMs);
    this.defaults = new DefaultsStore(this.sql);
    const first = this.backends[0]?.name;
    if (first) adoptLegacyRecords(this.sql, first);
  }

  /** The line to a backend, opened on first use; undefined when no such backend is configured. */
  private endpoint(name: string): Endpoint | undefined {
    let endpoint = this.endpoints.get(name);
    if (endpoint) return endpoint;
    const config = this.backends.find((b) => b.name === name);
    if (!config) return undefined;
    const client = new ComfyClient(config);
    const socket = new ComfySocket(client, {
      onEvent: (event) => this.onEvent(name, event),
      onFrame: (frame) => this.onFrame(name, frame),
      // Events may have been missed while disconnected: check open jobs against history at once.
      onConnected: () => void this.ctx.waitUntil(this.reconcileOpenJobs()),
      wantsConnection: () => this.openJobCount(name) > 0,
    });
    endpoint = { name, client, socket, lastOrphanCheck: 0 };
    this.endpoints.set(name, endpoint);
    return endpoint;
  }

  // --- RPC surface ----------------------------------------------------------------------------

  /** Records the job, then submits it with the socket's clientId so its events come to us. */
  async submit(request: SubmitRequest): Promise<StudioResult> {
    const now = Date.now();
    this.submitting++;
    try {
      return await this.submitJob(request, now);
    } finally {
      this.submitting--;
    }
  }

  private async submitJob(request: SubmitRequest, now: number): Promise<StudioResult> {
    const endpoint = this.endpoint(request.backend);
    if (!endpoint)
      return {
        ok: false,
        error: { kind: "unknown_backend", message: `There is no backend named '${request.backend}'.` },
      };
    const clientId = await this.clientIdFor(endpoint);
    // The row exists before POST /prompt because ComfyUI may start (and finish) before it answers.
    this.sql.exec(
      `INSERT INTO jobs (id, workflow_id, tool, status, params, graph, client_id, session, created_at, updated_at, backend, routing, resubmit, movable)
       VALUES (?, ?, ?, 'submitting', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      request.prompt_id,
      request.workflow_id,
      request.tool,
      JSON.stringify(request.params),
      JSON.stringify(request.graph),
      clientId,
      request.session,
      now,
      now,
      request.backend,
      JSON.stringify(request.routing),
      request.resubmit ? 1 : 0,
      request.movable ? 1 : 0,
    );
    this.trackerFor(request.prompt_id, request.graph, request.backend);
    return this.sendPrompt(endpoint, request.prompt_id, request.graph, clientId);
  }

  /**
   * Without a socket we still submit: the alarm's /history reconciliation completes the job. While
   * the socket backs off, submissions don't add connection attempts of their own.
   */
  private async clientIdFor(endpoint: Endpoint): Promise<string> {
    const offline = () => crypto.randomUUID().replaceAll("-", "");
    return (
      endpoint.socket.clientId ??
      (endpoint.socket.backingOff ? offline() : await endpoint.socket.connect().catch(offline))
    );
  }

  /** POST /prompt for a job whose row says 'submitting' on this endpoint's backend. */
  private async sendPrompt(
    endpoint: Endpoint,
    jobId: string,
    graph: ComfyGraph,
    clientId: string,
  ): Promise<StudioResult> {
    try {
      const accepted = await endpoint.client.queuePrompt(graph, clientId, jobId);
      // A 200 can still drop outputs whose nodes failed validation (comfyui-api.md §3.2): say which.
      const dropped =
        Object.keys(accepted.node_errors ?? {}).length > 0
          ? validationError({ node_errors: accepted.node_errors }).message
          : null;
      this.sql.exec(
        "UPDATE jobs SET status = CASE status WHEN 'submitting' THEN 'queued' ELSE status END, node_errors = ?, updated_at = ? WHERE id = ?",
        dropped,
        Date.now(),
        jobId,
      );
    } catch (error) {
      const moved = isOutage(error) ? await this.submitElsewhere(endpoint, jobId, error) : undefined;
      if (moved) return moved;
      const jobError = toJobError(error);
      this.settle(jobId, "failed", jobError);
      return { ok: false, error: jobError };
    }
    await this.scheduleAlarm();
    return { ok: true, job: this.view(jobId)! };
  }

  /**
   * The backend went away between routing and submission. A job that may go elsewhere (neither
   * pinned nor tied to inputs uploaded there) is routed again without it; the others fail with the
   * backend's error.
   */
  private async submitElsewhere(from: Endpoint, jobId: string, error: unknown): Promise<StudioResult | undefined> {
    const row = this.jobRow(jobId);
    if (row?.movable !== 1 || row.attempts >= MAX_ATTEMPTS || this.backends.length < 2) return undefined;
    this.ctx.waitUntil(
      coordinator(this.env)
        .suspect(from.name)
        .catch(() => undefined),
    );
    const target = await this.routeAway(row, from.name);
    if (typeof target === "string") return undefined;
    const reason = error instanceof Error ? error.message : String(error);
    return this.resubmit(
      row,
      target.endpoint,
      target.routing,
      `Backend '${from.name}' could not take the job (${reason})`,
    );
  }

  /**
   * A stream of NDJSON `WatchEvent`s: the current progress, every change, then one `final` line.
   * The caller bounds the wait by cancelling the stream; the job itself keeps running.
   */
  watch(jobId: string): ReadableStream<Uint8Array> {
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const writer = writable.getWriter();
    const job = this.view(jobId);
    if (!job || TERMINAL.has(job.status)) {
      this.write(writer, job ? { type: "final", job } : { type: "missing" });
      writer.close().catch(() => undefined);
      return readable;
    }
    let set = this.watchers.get(jobId);
    if (!set) this.watchers.set(jobId, (set = new Set()));
    set.add(writer);
    if (job.progress) this.write(writer, { type: "progress", progress: job.progress });
    return readable;
  }

  /**
   * The job as known now. An open job is checked against ComfyUI first when events may have been
   * missed: no socket, or nothing heard about it for a reconcile interval. With the socket up and
   * the job fresh, events are trusted: a `/queue` read per call would cost O(queue) on a busy GPU.
   */
  async getJob(jobId: string): Promise<JobView | undefined> {
    const row = this.jobRow(jobId);
    if (!row) return undefined;
    const stale = !this.endpoints.get(row.backend)?.socket.clientId || Date.now() - row.updated_at >= this.reconcileMs;
    if (!TERMINAL.has(row.status as JobStatus) && stale) {
      await this.reconcileBackend(row.backend, [row]);
      await this.finalizing.get(jobId);
    }
    return this.view(jobId);
  }

  /** Deletes a pending prompt or interrupts the running one, then confirms the outcome. */
  async cancel(jobId: string): Promise<StudioResult | undefined> {
    const row = this.jobRow(jobId);
    if (!row) return undefined;
    if (TERMINAL.has(row.status as JobStatus)) return { ok: true, job: this.view(jobId)! };
    const endpoint = this.endpoint(row.backend);
    if (!endpoint) return { ok: false, error: gone(row.backend) };
    try {
      const queue = await endpoint.client.queue();
      if (queue.queue_pending.some((item) => item[1] === jobId)) {
        await endpoint.client.deleteFromQueue([jobId]);
        // A deleted prompt never reaches history (GET_history_prompt_id__deleted.json): settle here.
        const after = await endpoint.client.queue();
        if (!after.queue_running.some((item) => item[1] === jobId)) {
          this.settle(jobId, "cancelled", {
            kind: "cancelled",
            message: "Cancelled before it started: removed from ComfyUI's queue.",
          });
          return { ok: true, job: this.view(jobId)! };
        }
      }
      // Running (or just started): interrupt only this prompt, then wait for ComfyUI to confirm.
      const settled = this.whenSettled(jobId, CANCEL_CONFIRM_MS);
      await endpoint.client.interrupt(jobId);
      await this.reconcileJobs(endpoint, [this.jobRow(jobId)!]).catch(() => undefined);
      await settled;
      return { ok: true, job: this.view(jobId)! };
    } catch (error) {
      return { ok: false, error: toJobError(error) };
    }
  }

  /** The exact graph a job submitted (for replaying it when its workflow file is gone). */
  jobGraph(jobId: string): string | undefined {
    return this.jobRow(jobId)?.graph;
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
    const row = asset && this.jobRow(asset.job_id);
    if (!asset || !row) return undefined;
    return { asset, job: this.view(row.id)!, graph: row.graph, history: row.history };
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
    return promptIds.filter((id) => this.jobRow(id) !== undefined);
  }

  /** Test and fault-drill hook: drop the ComfyUI sockets as a network failure would. */
  dropSocket(): void {
    for (const endpoint of this.endpoints.values()) endpoint.socket.dropForTest();
  }

  override async alarm(): Promise<void> {
    this.assets.purgeExpired(Date.now());
    await this.reconcile();
    await this.scheduleAlarm();
  }

  // --- events ---------------------------------------------------------------------------------

  private onEvent(backend: string, event: ComfyEvent): void {
    if (event.type === "status") {
      // Queue length changed: update the "queued" message of every job there that has not started.
      for (const jobId of this.trackers.keys())
        if (this.trackedOn.get(jobId) === backend) this.publishProgress(jobId, event);
      return;
    }
    const promptId = event.data.prompt_id;
    if (typeof promptId !== "string") return;
    const row = this.jobRow(promptId);
    // A backend that comes back may still run a job that has since moved elsewhere: not ours now.
    if (!row || TERMINAL.has(row.status as JobStatus) || row.backend !== backend) return;
    if (event.type === "execution_start" || (event.type === "executing" && event.data.node !== null)) {
      this.sql.exec(
        "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ? AND status IN ('submitting', 'queued')",
        Date.now(),
        Date.now(),
        promptId,
      );
    }
    // `executing {node: null}` is sent after history is written: the canonical "done" (§8.3).
    if (event.type === "executing" && event.data.node === null) {
      this.ctx.waitUntil(this.finalize(promptId));
      return;
    }
    this.publishProgress(promptId, event);
  }

  /** Type 4 previews name their prompt; other frames belong to whichever job is running. */
  private onFrame(backend: string, frame: BinaryFrame): void {
    for (const [jobId, tracker] of this.trackers) {
      if (this.trackedOn.get(jobId) !== backend) continue;
      const mine =
        frame.kind === "preview" && frame.prompt_id ? frame.prompt_id === jobId : tracker.runningNode !== undefined;
      if (mine) this.broadcast(jobId, tracker.applyFrame(frame));
    }
  }

  private publishProgress(jobId: string, event: ComfyEvent): void {
    const tracker = this.trackers.get(jobId) ?? this.restoreTracker(jobId);
    this.broadcast(jobId, tracker?.apply(event));
  }

  private broadcast(jobId: string, progress: JobProgress | undefined): void {
    if (!progress) return;
    for (const writer of this.watchers.get(jobId) ?? []) this.write(writer, { type: "progress", progress });
  }

  // --- completion -----------------------------------------------------------------------------

  /** Reads the authoritative history entry once per job, however many paths ask at once. */
  private finalize(jobId: string, known?: HistoryEntry): Promise<void> {
    let running = this.finalizing.get(jobId);
    if (!running) {
      running = this.completeFromHistory(jobId, known).finally(() => this.finalizing.delete(jobId));
      this.finalizing.set(jobId, running);
    }
    return running;
  }

  private async completeFromHistory(jobId: string, known?: HistoryEntry): Promise<void> {
    const endpoint = this.endpoint(this.jobRow(jobId)?.backend ?? "");
    let entry = known;
    for (let attempt = 0; endpoint && !entry && attempt < HISTORY_RETRIES; attempt++) {
      if (attempt > 0) await sleep(50 * attempt);
      entry = await endpoint.client.history(jobId).catch(() => undefined);
    }
    const row = this.jobRow(jobId);
    // No entry yet (or ComfyUI unreachable): the alarm will try again.
    if (!entry || !endpoint || !row || TERMINAL.has(row.status as JobStatus)) return;
    const items = collectOutputs(entry.outputs);
    const probed = await Promise.all(items.map((item) => this.probe(endpoint.client, item)));
    const messages = entry.status?.messages ?? [];
    const failed = entry.status?.status_str === "error" || entry.status?.completed === false;
    let status: JobStatus = "completed";
    let error: JobError | null = null;
    if (failed && messages.some(([name]) => name === "execution_interrupted")) {
      status = "cancelled";
      error = { kind: "interrupted", message: "The job was interrupted in ComfyUI before it finished." };
    } else if (failed) {
      const payload = messages.find(([name]) => name === "execution_error")?.[1] as
        | Partial<ExecutionErrorPayload>
        | undefined;
      status = "failed";
      error = toJobError(executionError(payload ?? {}));
    } else if (probed.length === 0) {
      status = "failed";
      error = {
        kind: "no_outputs",
        message: "ComfyUI finished the job but it produced no output files. Does the workflow end in a Save node?",
      };
    }
    this.ctx.storage.transactionSync(() => {
      this.assets.insert(row, probed, producedAt(messages));
      this.sql.exec("UPDATE jobs SET history = ? WHERE id = ?", JSON.stringify(entry), jobId);
      this.settle(jobId, status, error);
    });
    await this.scheduleAlarm();
  }

  /** Size and duration from the file's own header, total bytes from Content-Range: one small ranged GET. */
  private async probe(client: ComfyClient, item: OutputItem): Promise<ProbedOutput> {
    try {
      const response = await client.view(item, { range: `bytes=0-${PROBE_BYTES - 1}`, timeoutMs: 10_000 });
      const head = new Uint8Array(await response.arrayBuffer());
      const total = Number(
        response.headers.get("Content-Range")?.split("/")[1] ?? response.headers.get("Content-Length") ?? head.length,
      );
      const bytes = Number.isFinite(total) ? total : null;
      const size = item.kind === "image" || item.kind === "video" ? probeDimensions(head) : undefined;
      const duration =
        item.kind === "audio" || item.kind === "video" ? probeDuration(head, bytes, item.mime_type) : null;
      return { ...item, width: size?.width ?? null, height: size?.height ?? null, bytes, duration };
    } catch {
      return { ...item, width: null, height: null, bytes: null, duration: null };
    }
  }

  /** The one place a job becomes terminal: guarded so it happens once, then everyone is told. */
  private settle(jobId: string, status: JobStatus, error: JobError | null, onBackend?: string): boolean {
    const now = Date.now();
    // With `onBackend`, only while the job is still there: it may have just been moved elsewhere.
    const changed = this.sql.exec(
      `UPDATE jobs SET status = ?, error = ?, finished_at = ?, updated_at = ? WHERE id = ? AND status IN ${OPEN_STATUSES} AND backend = COALESCE(?, backend)`,
      status,
      error ? JSON.stringify(error) : null,
      now,
      now,
      jobId,
      onBackend ?? null,
    ).rowsWritten;
    if (changed === 0) return false;
    this.trackers.delete(jobId);
    this.trackedOn.delete(jobId);
    const job = this.view(jobId)!;
    for (const writer of this.watchers.get(jobId) ?? []) {
      this.write(writer, { type: "final", job });
      writer.close().catch(() => undefined);
    }
    this.watchers.delete(jobId);
    for (const resolve of this.settled.get(jobId) ?? []) resolve();
    this.settled.delete(jobId);
    return true;
  }

  private whenSettled(jobId: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      const list = this.settled.get(jobId) ?? [];
      list.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.settled.set(jobId, list);
    });
  }

  // --- reconciliation -------------------------------------------------------------------------

  /** The alarm: reconcile open jobs and keep the alarm going, or close idle sockets. */
  private async reconcile(): Promise<void> {
    await this.recheckOrphans();
    for (const endpoint of this.endpoints.values()) {
      // Nothing to watch there: an open socket would only keep this object (and its bill) awake.
      if (this.openJobCount(endpoint.name) === 0) {
        if (this.submitting === 0) endpoint.socket.close();
      } else endpoint.socket.ensure();
    }
    await this.reconcileOpenJobs();
  }

  private async reconcileOpenJobs(): Promise<void> {
    const open = this.sql
      .exec<JobRow>(`SELECT * FROM jobs WHERE status IN ${OPEN_STATUSES} ORDER BY created_at`)
      .toArray();
    await Promise.all(
      [...groupBy(open, (row) => row.backend)].map(([backend, rows]) => this.reconcileBackend(backend, rows)),
    );
  }

  /**
   * Reconciles one backend's jobs. Failing to reach it starts (or continues) an outage; one that
   * outlasts the grace period moves the jobs elsewhere or declares them lost, so no client waits
   * on a machine that is gone.
   */
  private async reconcileBackend(backend: string, rows: JobRow[]): Promise<void> {
    const endpoint = this.endpoint(backend);
    if (!endpoint) {
      for (const row of rows) this.settle(row.id, "lost", gone(backend));
      return;
    }
    try {
      await this.reconcileJobs(endpoint, rows);
      endpoint.unreachableSince = undefined;
    } catch (error) {
      if (!isOutage(error)) return;
      endpoint.unreachableSince ??= Date.now();
      endpoint.lastError = error instanceof Error ? error.message : String(error);
      if (Date.now() - endpoint.unreachableSince < this.graceMs) return;
      this.ctx.waitUntil(
        coordinator(this.env)
          .suspect(backend)
          .catch(() => undefined),
      );
      for (const row of rows) await this.failover(endpoint, row);
    }
  }

  /** Checks jobs against history, then the queue; absent from both twice in a row means lost. */
  private async reconcileJobs(endpoint: Endpoint, rows: JobRow[]): Promise<void> {
    let queue: QueueSnapshot | undefined;
    for (const row of rows) {
      const entry = await endpoint.client.history(row.id);
      // The job may have moved to another backend meanwhile: this one's answer is no longer its.
      if (this.jobRow(row.id)?.backend !== endpoint.name) continue;
      if (entry) {
        await this.finalize(row.id, entry);
        continue;
      }
      queue ??= await this.queueSnapshot(endpoint, Math.max(...rows.map((r) => r.updated_at)));
      const running = queue.queue_running.some((item) => item[1] === row.id);
      const pending = queue.queue_pending.some((item) => item[1] === row.id);
      if (running || pending) {
        this.sql.exec(
          `UPDATE jobs SET missing_checks = 0, status = CASE WHEN ? THEN 'running' WHEN status = 'submitting' THEN 'queued' ELSE status END,
                  started_at = CASE WHEN ? THEN COALESCE(started_at, ?) ELSE started_at END, updated_at = ?
           WHERE id = ? AND status IN ${OPEN_STATUSES} AND backend = ?`,
          running ? 1 : 0,
          running ? 1 : 0,
          Date.now(),
          Date.now(),
          row.id,
          endpoint.name,
        );
        continue;
      }
      // It may have finished between the two reads.
      const late = await endpoint.client.history(row.id);
      if (late && this.jobRow(row.id)?.backend === endpoint.name) {
        await this.finalize(row.id, late);
        continue;
      }
      const checks = row.missing_checks + 1;
      if (checks >= LOST_AFTER_CHECKS) {
        this.settle(
          row.id,
          "lost",
          {
            kind: "lost",
            message:
              `ComfyUI${this.backends.length > 1 ? ` on backend '${endpoint.name}'` : ""} no longer knows this job (it is in neither its queue nor its history): ` +
              "it was most likely restarted while the job was queued or running. Nothing was produced; submit it again.",
          },
          endpoint.name,
        );
      } else {
        this.sql.exec(
          "UPDATE jobs SET missing_checks = ?, updated_at = ? WHERE id = ? AND backend = ?",
          checks,
          Date.now(),
          row.id,
          endpoint.name,
        );
      }
    }
  }

  /**
   * The job's backend is gone. If the caller asked for it, the job is routed again (never back to
   * the dead backend) and submitted there under the same id; otherwise, or when no backend can
   * take it, it is declared lost, provisionally: when the backend answers again and finished it
   * after all, the job is revived with its outputs.
   */
  private async failover(from: Endpoint, stale: JobRow): Promise<void> {
    const outage = `Backend '${from.name}' has been unreachable for ${Math.round((Date.now() - from.unreachableSince!) / 1000)} s (${from.lastError ?? "no answer"})`;
    let why = "";
    let target: { endpoint: Endpoint; routing: RouteRequest } | undefined;
    if (stale.resubmit === 1 && stale.attempts < MAX_ATTEMPTS) {
      const routed = await this.routeAway(stale, from.name);
      if (typeof routed === "string") why = ` It could not be moved: ${routed}`;
      else target = routed;
    } else if (stale.resubmit === 1) {
      why = ` It was already moved ${stale.attempts - 1} time(s).`;
    }
    // Another path (the alarm, a get_job) may have settled or moved it while we were routing.
    const row = this.jobRow(stale.id);
    if (!row || row.backend !== from.name || TERMINAL.has(row.status as JobStatus)) return;
    if (target) {
      await this.resubmit(row, target.endpoint, target.routing, `Backend '${from.name}' went down`);
      return;
    }
    const changed = this.settle(
      row.id,
      "lost",
      {
        kind: "backend_down",
        backend: from.name,
        message:
          `${outage} while this job was ${row.status}.${why} Submit it again (it goes to a backend that is up), or pass ` +
          "resubmit_if_backend_lost=true to have such jobs moved automatically. If the backend comes back and finished it after all, this job completes by itself.",
      },
      from.name,
    );
    if (changed) this.sql.exec("UPDATE jobs SET orphaned_at = ? WHERE id = ?", Date.now(), row.id);
  }

  /** Asks the coordinator for another backend, never one the job already left; or says why there is none. */
  private async routeAway(row: JobRow, from: string): Promise<{ endpoint: Endpoint; routing: RouteRequest } | string> {
    const routing: RouteRequest = row.routing ? (JSON.parse(row.routing) as RouteRequest) : { requirements: [] };
    const exclude = [...(routing.exclude ?? []), from];
    const decision = await coordinator(this.env)
      .route({ requirements: routing.requirements, tags: routing.tags, exclude })
      .catch((error: unknown) => ({
        ok: false as const,
        kind: "no_backend" as const,
        message: error instanceof Error ? error.message : String(error),
      }));
    if (!decision.ok) return decision.message;
    const endpoint = this.endpoint(decision.backend);
    return endpoint
      ? { endpoint, routing: { ...routing, exclude } }
      : `backend '${decision.backend}' is not configured here`;
  }

  /** Sends the job to another backend under the same id; undefined when another path moved or ended it first. */
  private async resubmit(
    row: JobRow,
    target: Endpoint,
    routing: RouteRequest,
    why: string,
  ): Promise<StudioResult | undefined> {
    const clientId = await this.clientIdFor(target);
    const moved = this.sql.exec(
      `UPDATE jobs SET backend = ?, client_id = ?, routing = ?, status = 'submitting', attempts = attempts + 1, missing_checks = 0,
              started_at = NULL, updated_at = ? WHERE id = ? AND status IN ${OPEN_STATUSES} AND backend = ?`,
      target.name,
      clientId,
      JSON.stringify(routing),
      Date.now(),
      row.id,
      row.backend,
    ).rowsWritten;
    if (moved === 0) return undefined;
    const graph = JSON.parse(row.graph) as ComfyGraph;
    this.trackerFor(row.id, graph, target.name);
    this.broadcast(row.id, { fraction: 0, message: `${why}; moved to '${target.name}' and queued again.` });
    return this.sendPrompt(target, row.id, graph, clientId);
  }

  /**
   * Jobs declared lost with their backend: once it answers again, one that it finished after all
   * is completed with its outputs, one still queued is reopened, and one it has forgotten (it was
   * restarted) stays lost for good.
   */
  private async recheckOrphans(): Promise<void> {
    this.sql.exec(
      "UPDATE jobs SET orphaned_at = NULL WHERE orphaned_at IS NOT NULL AND orphaned_at < ?",
      Date.now() - ORPHAN_WINDOW_MS,
    );
    const orphans = this.sql.exec<JobRow>("SELECT * FROM jobs WHERE orphaned_at IS NOT NULL").toArray();
    for (const [backend, rows] of groupBy(orphans, (row) => row.backend)) {
      const endpoint = this.endpoint(backend);
      if (!endpoint || Date.now() - endpoint.lastOrphanCheck < this.orphanCheckMs) continue;
      endpoint.lastOrphanCheck = Date.now();
      try {
        for (const row of rows) {
          const entry = await endpoint.client.history(row.id, { timeoutMs: 5_000 });
          const queue = entry ? undefined : await this.queueSnapshot(endpoint, 0);
          const queued = queue && [...queue.queue_running, ...queue.queue_pending].some((item) => item[1] === row.id);
          if (!entry && !queued) {
            this.sql.exec("UPDATE jobs SET orphaned_at = NULL WHERE id = ?", row.id);
            continue;
          }
          this.sql.exec(
            "UPDATE jobs SET status = 'queued', error = NULL, finished_at = NULL, orphaned_at = NULL, missing_checks = 0, updated_at = ? WHERE id = ? AND status = 'lost'",
            Date.now(),
            row.id,
          );
          if (entry) await this.finalize(row.id, entry);
          else endpoint.socket.ensure();
        }
        endpoint.unreachableSince = undefined;
      } catch {
        // Still away: try again at the next check.
      }
    }
  }

  /**
   * ComfyUI's queue, shared by reconciliations within a short window (it holds every graph). A
   * snapshot older than the jobs' last change is never used: a job submitted after it was taken
   * would look missing.
   */
  private queueSnapshot(endpoint: Endpoint, notBefore: number): Promise<QueueSnapshot> {
    const recent = endpoint.recentQueue;
    if (!recent || recent.at <= notBefore || Date.now() - recent.at > QUEUE_SNAPSHOT_MS) {
      const value = endpoint.client.queue();
      endpoint.recentQueue = { at: Date.now(), value };
      value.catch(() => (endpoint.recentQueue = undefined));
      return value;
    }
    return recent.value;
  }

  /** The alarm runs while a job is open (reconciliation), while lost jobs may come back, and when the next asset expires. */
  private async scheduleAlarm(): Promise<void> {
    const orphans = this.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM jobs WHERE orphaned_at IS NOT NULL")
      .one().n;
    const candidates = [
      this.openJobCount() > 0 ? Date.now() + this.reconcileMs : null,
      orphans > 0 ? Date.now() + this.orphanCheckMs : null,
      this.assets.nextExpiry(),
    ].filter((t): t is number => t !== null);
    if (candidates.length === 0) return;
    const due = Math.max(Date.now() + 50, Math.min(...candidates));
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > due || current < Date.now()) await this.ctx.storage.setAlarm(due);
  }

  // --- storage helpers ------------------------------------------------------------------------

  /** Open jobs, on one backend or on all. */
  private openJobCount(backend?: string): number {
    const where = backend === undefined ? "" : " AND backend = ?";
    return this.sql
      .exec<{ n: number }>(
        `SELECT COUNT(*) AS n FROM jobs WHERE status IN ${OPEN_STATUSES}${where}`,
        ...(backend === undefined ? [] : [backend]),
      )
      .one().n;
  }

  private jobRow(jobId: string): JobRow | undefined {
    return this.sql.exec<JobRow>("SELECT * FROM jobs WHERE id = ?", jobId).toArray()[0];
  }

  private view(jobId: string): JobView | undefined {
    const row = this.jobRow(jobId);
    if (!row) return undefined;
    const assets = this.assets.forJob(jobId, Date.now());
    const tracker = this.trackers.get(jobId) ?? this.restoreTracker(jobId, row);
    return jobView(row, assets, tracker?.snapshot() ?? null);
  }

  private trackerFor(jobId: string, graph: ComfyGraph, backend: string): ProgressTracker {
    const tracker = new ProgressTracker(Object.keys(graph).length, (nodeId) => graph[nodeId]?.class_type);
    this.trackers.set(jobId, tracker);
    this.trackedOn.set(jobId, backend);
    return tracker;
  }

  /** After a restart the in-memory tracker is gone; rebuild it for open jobs. */
  private restoreTracker(jobId: string, row = this.jobRow(jobId)): ProgressTracker | undefined {
    if (!row || TERMINAL.has(row.status as JobStatus)) return undefined;
    return this.trackerFor(jobId, JSON.parse(row.graph) as ComfyGraph, row.backend);
  }

  private write(writer: WritableStreamDefaultWriter<Uint8Array>, event: WatchEvent): void {
    // A reader that went away (client disconnected) only loses its own stream, never the job.
    writer.write(this.encoder.encode(`${JSON.stringify(event)}\n`)).catch(() => {
      for (const set of this.watchers.values()) set.delete(writer);
    });
  }
}

export function toJobError(error: unknown): JobError {
  if (error instanceof ComfyError) {
    const scalars = Object.entries(error.details).filter(
      ([, value]) => value === null || ["string", "number", "boolean"].includes(typeof value),
    );
    return { kind: error.kind, message: error.message, ...(Object.fromEntries(scalars) as Record<string, Scalar>) };
  }
  return { kind: "internal", message: error instanceof Error ? error.message : String(error) };
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

/** Failures that mean the backend itself is away (not that it refused this job). */
function isOutage(error: unknown): boolean {
  if (!(error instanceof ComfyError)) return false;
  const status = typeof error.details.status === "number" ? error.details.status : 0;
  return (
    ["unreachable", "timeout", "access_misconfigured", "unauthorized"].includes(error.kind) ||
    (error.kind === "http" && status >= 500)
  );
}

function gone(backend: string): JobError {
  return {
    kind: "unknown_backend",
    backend,
    message: `This job ran on backend '${backend}', which is no longer configured. Restore it in COMFYUI_BACKENDS, or submit the job again.`,
  };
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
