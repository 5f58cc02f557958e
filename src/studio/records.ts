/** Job and asset records as stored, and the views tools return. */
import type { ComfyGraph } from "../comfy/types";
import type { MediaKind } from "../comfy/outputs";
import type { RouteRequest } from "../pool/routing";

/** A scalar: what job details are made of, so they cross Durable Object RPC with their types. */
export type Scalar = string | number | boolean | null;

export type JobStatus = "submitting" | "queued" | "running" | "completed" | "failed" | "cancelled" | "lost";

export const TERMINAL: ReadonlySet<JobStatus> = new Set(["completed", "failed", "cancelled", "lost"]);

/**
 * The path that settled a job. `event` is the normal one (ComfyUI's WebSocket said it was done);
 * the others are safety nets, recorded so a broken event path shows instead of hiding behind them:
 * `reconcile` (the alarm read /history), `reconnect` (the check after a socket reconnect),
 * `get_job` (a status read found it done), `orphan_check` (its backend came back and had finished
 * it), `cancel`, `submission` (refused at POST /prompt) and `failover` (its backend stayed away).
 */
export const COMPLETION_PATHS = [
  "event",
  "reconcile",
  "reconnect",
  "get_job",
  "orphan_check",
  "cancel",
  "submission",
  "failover",
] as const;
export type CompletedVia = (typeof COMPLETION_PATHS)[number];

export interface JobError {
  kind: string;
  message: string;
  [detail: string]: Scalar | undefined;
}

export interface JobProgress {
  /** 0..1 over the whole job. */
  fraction: number;
  message: string;
  queue_remaining?: number;
  node?: string;
  node_class?: string;
  node_index?: number;
  node_count?: number;
  step?: number;
  steps?: number;
  /** Sampler preview frames seen so far (only with a ComfyUI preview method enabled). */
  previews?: number;
}

export interface AssetView {
  asset_id: string;
  job_id: string;
  prompt_id: string;
  node_id: string;
  filename: string;
  subfolder: string;
  folder_type: string;
  output_key: string;
  mime_type: string;
  kind: MediaKind;
  animated: boolean;
  width: number | null;
  height: number | null;
  bytes_size: number | null;
  workflow_id: string;
  tool: string;
  created_at: string;
  /** When the registry forgets it (ASSET_TTL_HOURS); null = kept. The file stays in ComfyUI. */
  expires_at: string | null;
  /** Seconds, for audio and video when the file's header tells. */
  duration: number | null;
  /** The client session or tag it was made in, when the client gave one. */
  session: string | null;
  /** The ComfyUI backend that made it and still holds the file. */
  backend: string;
}

export interface JobView {
  job_id: string;
  prompt_id: string;
  status: JobStatus;
  workflow_id: string;
  tool: string;
  params: Record<string, Scalar>;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: JobError | null;
  /** Output nodes ComfyUI dropped when it accepted only part of the graph, rendered readably. */
  dropped_outputs: string | null;
  progress: JobProgress | null;
  assets: AssetView[];
  /** The ComfyUI backend the job was sent to (its latest, if it was resubmitted elsewhere). */
  backend: string;
  /** Submissions so far: above 1 when it was moved off a backend that went down. */
  attempts: number;
  /** Which path settled it (null while open). */
  completed_via: CompletedVia | null;
}

export interface SubmitRequest {
  prompt_id: string;
  workflow_id: string;
  tool: string;
  graph: ComfyGraph;
  params: Record<string, Scalar>;
  session: string | null;
  backend: string;
  /** How the job was routed, kept so it can be routed again if its backend goes down. */
  routing: RouteRequest;
  /** Move the job to another backend (instead of declaring it lost) if its backend goes down. */
  resubmit: boolean;
  /** Neither pinned nor tied to uploaded inputs: if its backend cannot be reached at submission, another takes it. */
  movable: boolean;
}

export interface JobRow extends Record<string, SqlStorageValue> {
  id: string;
  workflow_id: string;
  tool: string;
  status: string;
  params: string;
  graph: string;
  client_id: string | null;
  error: string | null;
  node_errors: string | null;
  missing_checks: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
  history: string | null;
  session: string | null;
  backend: string;
  routing: string | null;
  resubmit: number;
  movable: number;
  attempts: number;
  orphaned_at: number | null;
  completed_via: string | null;
}

export interface AssetRow extends Record<string, SqlStorageValue> {
  id: string;
  job_id: string;
  node_id: string;
  filename: string;
  subfolder: string;
  folder_type: string;
  output_key: string;
  mime_type: string;
  kind: string;
  animated: number;
  width: number | null;
  height: number | null;
  bytes_size: number | null;
  workflow_id: string;
  tool: string;
  created_at: number;
  expires_at: number | null;
  duration: number | null;
  session: string | null;
  backend: string;
}

export function assetView(row: AssetRow): AssetView {
  return {
    asset_id: row.id,
    job_id: row.job_id,
    prompt_id: row.job_id,
    node_id: row.node_id,
    filename: row.filename,
    subfolder: row.subfolder,
    folder_type: row.folder_type,
    output_key: row.output_key,
    mime_type: row.mime_type,
    kind: row.kind as MediaKind,
    animated: row.animated === 1,
    width: row.width,
    height: row.height,
    bytes_size: row.bytes_size,
    workflow_id: row.workflow_id,
    tool: row.tool,
    created_at: iso(row.created_at),
    expires_at: row.expires_at === null ? null : iso(row.expires_at),
    duration: row.duration,
    session: row.session,
    backend: row.backend,
  };
}

export function jobView(row: JobRow, assets: AssetView[], progress: JobProgress | null): JobView {
  return {
    job_id: row.id,
    prompt_id: row.id,
    status: row.status as JobStatus,
    workflow_id: row.workflow_id,
    tool: row.tool,
    params: JSON.parse(row.params) as Record<string, Scalar>,
    created_at: iso(row.created_at),
    started_at: row.started_at === null ? null : iso(row.started_at),
    finished_at: row.finished_at === null ? null : iso(row.finished_at),
    error: row.error === null ? null : (JSON.parse(row.error) as JobError),
    dropped_outputs: row.node_errors,
    progress: TERMINAL.has(row.status as JobStatus) ? null : progress,
    assets,
    backend: row.backend,
    attempts: row.attempts,
    completed_via: TERMINAL.has(row.status as JobStatus) ? (row.completed_via as CompletedVia | null) : null,
  };
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
