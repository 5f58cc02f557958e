/**
 * The safety nets under the event path. Events can be lost (socket drops, ComfyUI or this object
 * restarting), so while any job is open the alarm checks each against its backend's history and
 * queue: nothing finished is ever lost, nothing is registered twice. A backend that stays away past
 * the grace period has its jobs moved elsewhere (when the caller asked) or declared lost; those are
 * looked for again when it answers, and revived if it finished them. Every job these paths settle
 * records which one did (`completed_via`), so a broken event path shows instead of hiding.
 */
import type { ComfyClient } from "../comfy/client";
import { coordinator } from "../pool/backends";
import type { RouteRequest } from "../pool/routing";
import type { Completion } from "./completion";
import type { Endpoint, Endpoints } from "./endpoints";
import { gone, isOutage, type JobStore, OPEN_STATUSES } from "./jobs";
import { type CompletedVia, type JobRow, type JobStatus, TERMINAL } from "./records";
import { MAX_ATTEMPTS, type Submission } from "./submission";

type QueueSnapshot = Awaited<ReturnType<ComfyClient["queue"]>>;
type CheckPath = Extract<CompletedVia, "reconcile" | "reconnect" | "get_job" | "cancel">;

/**
 * How long a socket stays open after its backend's last job: the next generation of an interactive
 * session then starts on an open socket instead of a fresh connection through the tunnel, while an
 * idle studio still lets go of it (an open socket keeps the object awake).
 */
export const SOCKET_LINGER_MS = 60_000;
/** Reconciliations a job may be absent from both queue and history before it is declared lost. */
const LOST_AFTER_CHECKS = 2;
const QUEUE_SNAPSHOT_MS = 500;
/** Jobs lost with their backend are looked for again at most this often, for this long, once it answers. */
const ORPHAN_CHECK_MAX_MS = 15_000;
const ORPHAN_WINDOW_MS = 6 * 3_600_000;

export class Reconciler {
  /** Three reconcile intervals (15 s at most): a returning backend is asked soon, a dead one rarely. */
  readonly orphanCheckMs: number;

  constructor(
    private readonly env: Env,
    private readonly ctx: DurableObjectState,
    private readonly sql: SqlStorage,
    private readonly jobs: JobStore,
    private readonly endpoints: Endpoints,
    private readonly completion: Completion,
    private readonly submission: Submission,
    private readonly options: { reconcileMs: number; graceMs: number; backendCount: number },
  ) {
    this.orphanCheckMs = Math.min(ORPHAN_CHECK_MAX_MS, 3 * options.reconcileMs);
  }

  /** The alarm's round: orphans, sockets (open where jobs are, closed once idle a while), open jobs. */
  async round(): Promise<void> {
    await this.recheckOrphans();
    const now = Date.now();
    for (const endpoint of this.endpoints.all()) {
      if (this.jobs.openCount(endpoint.name) > 0) {
        endpoint.lastBusyAt = now;
        endpoint.socket.ensure();
      } else if (this.submission.inFlight === 0 && now - endpoint.lastBusyAt >= SOCKET_LINGER_MS) {
        // Nothing to watch there: an open socket would only keep this object (and its bill) awake.
        endpoint.socket.close();
      }
    }
    await this.openJobs("reconcile");
  }

  /** When the alarm should next close a lingering socket, if any is open with nothing to watch. */
  nextSocketClose(): number | null {
    const idle = this.endpoints
      .all()
      .filter((endpoint) => endpoint.socket.clientId && this.jobs.openCount(endpoint.name) === 0)
      .map((endpoint) => endpoint.lastBusyAt + SOCKET_LINGER_MS);
    return idle.length ? Math.min(...idle) : null;
  }

  async openJobs(via: CheckPath): Promise<void> {
    await Promise.all(
      [...groupBy(this.jobs.open(), (row) => row.backend)].map(([backend, rows]) => this.backend(backend, rows, via)),
    );
  }

  /**
   * Reconciles one backend's jobs. Failing to reach it starts (or continues) an outage; one that
   * outlasts the grace period moves the jobs elsewhere or declares them lost, so no client waits
   * on a machine that is gone.
   */
  async backend(backend: string, rows: JobRow[], via: CheckPath): Promise<void> {
    const endpoint = this.endpoints.get(backend);
    if (!endpoint) {
      for (const row of rows) this.jobs.settle(row.id, "lost", gone(backend), via);
      return;
    }
    try {
      await this.check(endpoint, rows, via);
      endpoint.unreachableSince = undefined;
    } catch (error) {
      if (!isOutage(error)) return;
      endpoint.unreachableSince ??= Date.now();
      endpoint.lastError = error instanceof Error ? error.message : String(error);
      if (Date.now() - endpoint.unreachableSince < this.options.graceMs) return;
      this.ctx.waitUntil(
        coordinator(this.env)
          .suspect(backend)
          .catch(() => undefined),
      );
      for (const row of rows) await this.failover(endpoint, row);
    }
  }

  /** Checks jobs against history, then the queue; absent from both twice in a row means lost. */
  async check(endpoint: Endpoint, rows: JobRow[], via: CheckPath): Promise<void> {
    let queue: QueueSnapshot | undefined;
    for (const row of rows) {
      const entry = await endpoint.client.history(row.id);
      // The job may have moved to another backend meanwhile: this one's answer is no longer its.
      if (this.jobs.row(row.id)?.backend !== endpoint.name) continue;
      if (entry) {
        await this.completion.finalize(row.id, via, entry);
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
      if (late && this.jobs.row(row.id)?.backend === endpoint.name) {
        await this.completion.finalize(row.id, via, late);
        continue;
      }
      const checks = row.missing_checks + 1;
      if (checks >= LOST_AFTER_CHECKS) {
        this.jobs.settle(
          row.id,
          "lost",
          {
            kind: "lost",
            message:
              `ComfyUI${this.options.backendCount > 1 ? ` on backend '${endpoint.name}'` : ""} no longer knows this job (it is in neither its queue nor its history): ` +
              "it was most likely restarted while the job was queued or running. Nothing was produced; submit it again.",
          },
          via,
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

  /** Jobs declared lost with their backend are rechecked while any are (the alarm keeps going for them). */
  orphanCount(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM jobs WHERE orphaned_at IS NOT NULL").one().n;
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
      const routed = await this.submission.routeAway(stale, from.name);
      if (typeof routed === "string") why = ` It could not be moved: ${routed}`;
      else target = routed;
    } else if (stale.resubmit === 1) {
      why = ` It was already moved ${stale.attempts - 1} time(s).`;
    }
    // Another path (the alarm, a get_job) may have settled or moved it while we were routing.
    const row = this.jobs.row(stale.id);
    if (!row || row.backend !== from.name || TERMINAL.has(row.status as JobStatus)) return;
    if (target) {
      await this.submission.resubmit(row, target.endpoint, target.routing, `Backend '${from.name}' went down`);
      return;
    }
    const changed = this.jobs.settle(
      row.id,
      "lost",
      {
        kind: "backend_down",
        backend: from.name,
        message:
          `${outage} while this job was ${row.status}.${why} Submit it again (it goes to a backend that is up), or pass ` +
          "resubmit_if_backend_lost=true to have such jobs moved automatically. If the backend comes back and finished it after all, this job completes by itself.",
      },
      "failover",
      from.name,
    );
    if (changed) this.sql.exec("UPDATE jobs SET orphaned_at = ? WHERE id = ?", Date.now(), row.id);
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
      const endpoint = this.endpoints.get(backend);
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
            `UPDATE jobs SET status = 'queued', error = NULL, finished_at = NULL, orphaned_at = NULL, missing_checks = 0,
                    completed_via = NULL, updated_at = ? WHERE id = ? AND status = 'lost'`,
            Date.now(),
            row.id,
          );
          if (entry) await this.completion.finalize(row.id, "orphan_check", entry);
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
  queueSnapshot(endpoint: Endpoint, notBefore: number): Promise<QueueSnapshot> {
    const recent = endpoint.recentQueue;
    if (!recent || recent.at <= notBefore || Date.now() - recent.at > QUEUE_SNAPSHOT_MS) {
      const value = endpoint.client.queue();
      endpoint.recentQueue = { at: Date.now(), value };
      value.catch(() => (endpoint.recentQueue = undefined));
      return value;
    }
    return recent.value;
  }
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
}
