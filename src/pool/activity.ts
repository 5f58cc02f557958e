/**
 * What happened on each backend over the last hour: event-socket reconnects and drops (from every
 * studio and from the coordinator's own status sockets) and how jobs were completed, by path. A
 * socket that keeps dying, or jobs completed by the safety nets rather than by events, must show
 * in `list_backends` and `/healthz` instead of hiding behind the fallback that covers for them.
 * Kept in the coordinator's SQLite storage, so a restart of the coordinator loses nothing.
 */
import { COMPLETION_PATHS, type CompletedVia } from "../studio/records";

export type ActivityKind = "reconnect" | "socket_drop" | `completed:${CompletedVia}`;

export interface LastHour {
  /** Event sockets opened again after a drop. */
  reconnects: number;
  /** Event sockets that closed while wanted. */
  socket_drops: number;
  /** Jobs settled, by the path that settled them (`event` is the normal one). */
  completions: Record<CompletedVia, number>;
}

const HOUR_MS = 3_600_000;

export class Activity {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(`CREATE TABLE IF NOT EXISTS activity (backend TEXT NOT NULL, kind TEXT NOT NULL, at INTEGER NOT NULL);
              CREATE INDEX IF NOT EXISTS activity_by_time ON activity(at);`);
  }

  record(backend: string, kind: ActivityKind): void {
    const now = Date.now();
    this.sql.exec("DELETE FROM activity WHERE at < ?", now - HOUR_MS);
    this.sql.exec("INSERT INTO activity (backend, kind, at) VALUES (?, ?, ?)", backend, kind, now);
  }

  lastHour(backends: string[]): Record<string, LastHour> {
    const counts = this.sql
      .exec<{ backend: string; kind: string; n: number }>(
        "SELECT backend, kind, COUNT(*) AS n FROM activity WHERE at >= ? GROUP BY backend, kind",
        Date.now() - HOUR_MS,
      )
      .toArray();
    const result: Record<string, LastHour> = {};
    for (const name of backends) {
      const completions = Object.fromEntries(COMPLETION_PATHS.map((path) => [path, 0])) as Record<CompletedVia, number>;
      result[name] = { reconnects: 0, socket_drops: 0, completions };
    }
    for (const { backend, kind, n } of counts) {
      const entry = result[backend];
      if (!entry) continue;
      if (kind === "reconnect") entry.reconnects = n;
      else if (kind === "socket_drop") entry.socket_drops = n;
      else if (kind.startsWith("completed:")) {
        const path = kind.slice("completed:".length) as CompletedVia;
        if (path in entry.completions) entry.completions[path] = n;
      }
    }
    return result;
  }
}
