/**
 * The studio's job rows: recording a submission, reading a job as tools see it, and the one place a
 * job becomes terminal (`settle`), guarded so it happens once whichever path gets there first.
 */
import { ComfyError } from "../comfy/errors";
import type { ComfyGraph } from "../comfy/types";
import type { RouteRequest } from "../pool/routing";
import type { AssetStore } from "./assets";
import type { LiveJobs } from "./live";
import type { ProgressTracker } from "./progress";
import {
  type CompletedVia,
  type JobError,
  type JobRow,
  type JobStatus,
  type JobView,
  jobView,
  type Scalar,
  type SubmitRequest,
  TERMINAL,
} from "./records";

export const OPEN_STATUSES = "('submitting', 'queued', 'running')";

export class JobStore {
  constructor(
    private readonly sql: SqlStorage,
    private readonly assets: AssetStore,
    private readonly live: LiveJobs,
    /** Told of every job that settles, and by which path (the pool counts completions per backend). */
    private readonly onSettled: (row: JobRow, via: CompletedVia) => void,
  ) {}

  row(jobId: string): JobRow | undefined {
    return this.sql.exec<JobRow>("SELECT * FROM jobs WHERE id = ?", jobId).toArray()[0];
  }

  /** The job as tools see it, with its assets and, while open, its progress. */
  view(jobId: string): JobView | undefined {
    const row = this.row(jobId);
    if (!row) return undefined;
    const assets = this.assets.forJob(jobId, Date.now());
    return jobView(row, assets, this.tracker(row)?.snapshot() ?? null);
  }

  /** An open job's progress tracker; after a restart the in-memory one is gone and is rebuilt. */
  tracker(row: JobRow): ProgressTracker | undefined {
    if (TERMINAL.has(row.status as JobStatus)) return undefined;
    return this.live.tracker(row.id) ?? this.live.track(row.id, JSON.parse(row.graph) as ComfyGraph, row.backend);
  }

  /** Open jobs, on one backend or on all. */
  openCount(backend?: string): number {
    const where = backend === undefined ? "" : " AND backend = ?";
    return this.sql
      .exec<{ n: number }>(
        `SELECT COUNT(*) AS n FROM jobs WHERE status IN ${OPEN_STATUSES}${where}`,
        ...(backend === undefined ? [] : [backend]),
      )
      .one().n;
  }

  /** Jobs submitted at or after `since` (ms), and when the first of them was. */
  submittedSince(since: number): { count: number; first: number | null } {
    return this.sql
      .exec<{ count: number; first: number | null }>(
        "SELECT COUNT(*) AS count, MIN(created_at) AS first FROM jobs WHERE created_at >= ?",
        since,
      )
      .one();
  }

  open(): JobRow[] {
    return this.sql.exec<JobRow>(`SELECT * FROM jobs WHERE status IN ${OPEN_STATUSES} ORDER BY created_at`).toArray();
  }

  /** The row exists before POST /prompt, because ComfyUI may start (and finish) the job before it answers. */
  insert(request: SubmitRequest, clientId: string, now: number): void {
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
  }

  /** ComfyUI accepted the prompt (unless events already moved the job further). */
  accepted(jobId: string, droppedOutputs: string | null): void {
    this.sql.exec(
      "UPDATE jobs SET status = CASE status WHEN 'submitting' THEN 'queued' ELSE status END, node_errors = ?, updated_at = ? WHERE id = ?",
      droppedOutputs,
      Date.now(),
      jobId,
    );
  }

  /** ComfyUI started it (an event said so). */
  started(jobId: string): void {
    this.sql.exec(
      "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ? AND status IN ('submitting', 'queued')",
      Date.now(),
      Date.now(),
      jobId,
    );
  }

  /** The job goes to another backend under the same id; false when another path moved or ended it first. */
  moveTo(row: JobRow, backend: string, clientId: string, routing: RouteRequest): boolean {
    return (
      this.sql.exec(
        `UPDATE jobs SET backend = ?, client_id = ?, routing = ?, status = 'submitting', attempts = attempts + 1, missing_checks = 0,
                started_at = NULL, updated_at = ? WHERE id = ? AND status IN ${OPEN_STATUSES} AND backend = ?`,
        backend,
        clientId,
        JSON.stringify(routing),
        Date.now(),
        row.id,
        row.backend,
      ).rowsWritten > 0
    );
  }

  /** ComfyUI's history entry, kept as the job's provenance. */
  recordHistory(jobId: string, history: string): void {
    this.sql.exec("UPDATE jobs SET history = ? WHERE id = ?", history, jobId);
  }

  /**
   * The one place a job becomes terminal: guarded so it happens once, then everyone is told. With
   * `onBackend`, only while the job is still there: it may have just been moved elsewhere.
   */
  settle(jobId: string, status: JobStatus, error: JobError | null, via: CompletedVia, onBackend?: string): boolean {
    const now = Date.now();
    const changed = this.sql.exec(
      `UPDATE jobs SET status = ?, error = ?, finished_at = ?, updated_at = ?, completed_via = ?
       WHERE id = ? AND status IN ${OPEN_STATUSES} AND backend = COALESCE(?, backend)`,
      status,
      error ? JSON.stringify(error) : null,
      now,
      now,
      via,
      jobId,
      onBackend ?? null,
    ).rowsWritten;
    if (changed === 0) return false;
    const row = this.row(jobId)!;
    this.live.ended(this.view(jobId)!);
    this.onSettled(row, via);
    return true;
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

/** Failures that mean the backend itself is away (not that it refused this job). */
export function isOutage(error: unknown): boolean {
  if (!(error instanceof ComfyError)) return false;
  const status = typeof error.details.status === "number" ? error.details.status : 0;
  return (
    ["unreachable", "timeout", "access_misconfigured", "unauthorized"].includes(error.kind) ||
    (error.kind === "http" && status >= 500)
  );
}

export function gone(backend: string): JobError {
  return {
    kind: "unknown_backend",
    backend,
    message: `This job ran on backend '${backend}', which is no longer configured. Restore it in COMFYUI_BACKENDS, or submit the job again.`,
  };
}
