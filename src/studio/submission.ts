/**
 * Sending jobs to ComfyUI: checking the user's quota (open jobs, jobs per minute), recording the
 * job, then `POST /prompt` under the socket's clientId so its events come back to this studio; and
 * sending a job again elsewhere (under the same id) when its backend cannot be reached at
 * submission or goes away while it runs.
 */
import { validationError } from "../comfy/errors";
import type { Limit } from "../config";
import type { ComfyGraph } from "../comfy/types";
import { coordinator } from "../pool/backends";
import type { RouteRequest } from "../pool/routing";
import type { Endpoint, Endpoints } from "./endpoints";
import { isOutage, type JobStore, toJobError } from "./jobs";
import type { LiveJobs } from "./live";
import type { JobError, JobRow, JobView, SubmitRequest } from "./records";

export type StudioResult = { ok: true; job: JobView } | { ok: false; error: JobError };

/** A job is moved to another backend at most this many times. */
export const MAX_ATTEMPTS = 3;

/** The limits counted per studio at submission (the Worker decides which apply to the caller). */
export interface Quota {
  openJobs: Limit;
  jobsPerMinute: Limit;
}

export interface Usage {
  open_jobs: number;
  jobs_last_minute: number;
}

const MINUTE_MS = 60_000;

export class Submission {
  /** Submissions in flight: the socket they are about to use must not be closed as idle. */
  inFlight = 0;

  constructor(
    private readonly env: Env,
    private readonly ctx: DurableObjectState,
    private readonly jobs: JobStore,
    private readonly live: LiveJobs,
    private readonly endpoints: Endpoints,
    private readonly backendCount: number,
    private readonly afterwards: () => Promise<void>,
  ) {}

  async submit(request: SubmitRequest, quota?: Quota): Promise<StudioResult> {
    this.inFlight++;
    try {
      const endpoint = this.endpoints.get(request.backend);
      if (!endpoint)
        return {
          ok: false,
          error: { kind: "unknown_backend", message: `There is no backend named '${request.backend}'.` },
        };
      const clientId = await this.endpoints.clientIdFor(endpoint);
      // Counted and recorded with no await in between: the object runs one event at a time, so
      // parallel submissions cannot all see the same count (a read-then-write from the Worker could).
      const now = Date.now();
      const refusal = quota && this.overQuota(quota, now);
      if (refusal) return { ok: false, error: refusal };
      this.jobs.insert(request, clientId, now);
      this.live.track(request.prompt_id, request.graph, request.backend);
      return await this.send(endpoint, request.prompt_id, request.graph, clientId);
    } finally {
      this.inFlight--;
    }
  }

  usage(now = Date.now()): Usage {
    return { open_jobs: this.jobs.openCount(), jobs_last_minute: this.jobs.submittedSince(now - MINUTE_MS).count };
  }

  /** Why one more job would exceed the caller's quota, or undefined when it fits. */
  overQuota(quota: Quota, now = Date.now()): JobError | undefined {
    const { openJobs, jobsPerMinute } = quota;
    if (openJobs.value !== null) {
      const open = this.jobs.openCount();
      if (open >= openJobs.value)
        return {
          kind: "limit_open_jobs",
          limit: openJobs.value,
          variable: openJobs.variable,
          message:
            `Limit reached: you have ${open} open job(s) and may have at most ${openJobs.value} at once. ` +
            `Wait for one to finish (get_job) or cancel one (cancel_job), then retry. ` +
            `The gateway's operator can raise this limit with ${openJobs.variable}.`,
        };
    }
    if (jobsPerMinute.value !== null) {
      const recent = this.jobs.submittedSince(now - MINUTE_MS);
      if (recent.count >= jobsPerMinute.value) {
        const retry = recent.first === null ? 60 : Math.max(1, Math.ceil((recent.first + MINUTE_MS - now) / 1000));
        return {
          kind: "limit_jobs_per_minute",
          limit: jobsPerMinute.value,
          variable: jobsPerMinute.variable,
          retry_after_seconds: retry,
          message:
            `Limit reached: you submitted ${recent.count} job(s) in the last minute, the most allowed is ${jobsPerMinute.value}. ` +
            `Retry in ${retry} s. The gateway's operator can raise this limit with ${jobsPerMinute.variable}.`,
        };
      }
    }
    return undefined;
  }

  /** Asks the coordinator for another backend, never one the job already left; or says why there is none. */
  async routeAway(row: JobRow, from: string): Promise<{ endpoint: Endpoint; routing: RouteRequest } | string> {
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
    const endpoint = this.endpoints.get(decision.backend);
    return endpoint
      ? { endpoint, routing: { ...routing, exclude } }
      : `backend '${decision.backend}' is not configured here`;
  }

  /** Sends the job to another backend under the same id; undefined when another path moved or ended it first. */
  async resubmit(row: JobRow, target: Endpoint, routing: RouteRequest, why: string): Promise<StudioResult | undefined> {
    const clientId = await this.endpoints.clientIdFor(target);
    if (!this.jobs.moveTo(row, target.name, clientId, routing)) return undefined;
    const graph = JSON.parse(row.graph) as ComfyGraph;
    this.live.track(row.id, graph, target.name);
    this.live.broadcast(row.id, { fraction: 0, message: `${why}; moved to '${target.name}' and queued again.` });
    return this.send(target, row.id, graph, clientId);
  }

  /** POST /prompt for a job whose row says 'submitting' on this endpoint's backend. */
  private async send(endpoint: Endpoint, jobId: string, graph: ComfyGraph, clientId: string): Promise<StudioResult> {
    try {
      const accepted = await endpoint.client.queuePrompt(graph, clientId, jobId);
      // A 200 can still drop outputs whose nodes failed validation (comfyui-api.md §3.2): say which.
      const dropped =
        Object.keys(accepted.node_errors ?? {}).length > 0
          ? validationError({ node_errors: accepted.node_errors }).message
          : null;
      this.jobs.accepted(jobId, dropped);
    } catch (error) {
      const moved = isOutage(error) ? await this.submitElsewhere(endpoint, jobId, error) : undefined;
      if (moved) return moved;
      const jobError = toJobError(error);
      this.jobs.settle(jobId, "failed", jobError, "submission");
      return { ok: false, error: jobError };
    }
    await this.afterwards();
    return { ok: true, job: this.jobs.view(jobId)! };
  }

  /**
   * The backend went away between routing and submission. A job that may go elsewhere (neither
   * pinned nor tied to inputs uploaded there) is routed again without it; the others fail with the
   * backend's error.
   */
  private async submitElsewhere(from: Endpoint, jobId: string, error: unknown): Promise<StudioResult | undefined> {
    const row = this.jobs.row(jobId);
    if (row?.movable !== 1 || row.attempts >= MAX_ATTEMPTS || this.backendCount < 2) return undefined;
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
}
