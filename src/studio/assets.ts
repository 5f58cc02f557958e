/**
 * The studio's asset registry: one record per file per job (a cached rerun that reports an older
 * job's file gets its own record and provenance), retention by ASSET_TTL_HOURS, and newest-first
 * listing with filters and an opaque cursor. Expired records are invisible at once and deleted by
 * the studio's alarm.
 */
import type { OutputItem } from "../comfy/outputs";
import { assetView, type AssetRow, type AssetView, type JobRow } from "./records";

export interface ProbedOutput extends OutputItem {
  width: number | null;
  height: number | null;
  bytes: number | null;
  duration: number | null;
}

export interface AssetQuery {
  limit: number;
  cursor?: string;
  workflow_id?: string;
  kind?: string;
  session?: string;
}

export interface AssetPage {
  assets: AssetView[];
  next_cursor: string | null;
}

export class AssetStore {
  constructor(
    private readonly sql: SqlStorage,
    /** Retention in ms; null keeps assets until deleted. */
    private readonly ttlMs: number | null,
  ) {}

  /** Idempotent: registering the same job's files again changes nothing. */
  insert(job: JobRow, items: ProbedOutput[], now: number): void {
    const expires = this.ttlMs === null ? null : now + this.ttlMs;
    for (const item of items) {
      this.sql.exec(
        `INSERT INTO assets (id, job_id, node_id, filename, subfolder, folder_type, output_key, mime_type, kind, animated,
                             width, height, bytes_size, workflow_id, tool, created_at, expires_at, duration, session, backend)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (job_id, folder_type, subfolder, filename) DO NOTHING`,
        crypto.randomUUID(),
        job.id,
        item.node_id,
        item.filename,
        item.subfolder,
        item.type,
        item.key,
        item.mime_type,
        item.kind,
        item.animated ? 1 : 0,
        item.width,
        item.height,
        item.bytes,
        job.workflow_id,
        job.tool,
        now,
        expires,
        item.duration,
        job.session,
        job.backend,
      );
    }
  }

  get(id: string, now: number): AssetView | undefined {
    const row = this.sql.exec<AssetRow>(`SELECT * FROM assets WHERE id = ? AND ${LIVE}`, id, now).toArray()[0];
    return row ? assetView(row) : undefined;
  }

  forJob(jobId: string, now: number): AssetView[] {
    return this.sql
      .exec<AssetRow>(`SELECT * FROM assets WHERE job_id = ? AND ${LIVE} ORDER BY node_id, filename`, jobId, now)
      .toArray()
      .map(assetView);
  }

  /** Newest first; the cursor is the position after the last item of the previous page. */
  list(query: AssetQuery, now: number): AssetPage {
    const where = [LIVE];
    const args: SqlStorageValue[] = [now];
    if (query.workflow_id) where.push("workflow_id = ?"), args.push(query.workflow_id);
    if (query.kind) where.push("kind = ?"), args.push(query.kind);
    if (query.session) where.push("session = ?"), args.push(query.session);
    const after = query.cursor ? decodeCursor(query.cursor) : undefined;
    if (after)
      where.push("(created_at < ? OR (created_at = ? AND id < ?))"), args.push(after.created, after.created, after.id);
    const rows = this.sql
      .exec<AssetRow>(
        `SELECT * FROM assets WHERE ${where.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ?`,
        ...args,
        query.limit + 1,
      )
      .toArray();
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return {
      assets: page.map(assetView),
      next_cursor: rows.length > query.limit && last ? encodeCursor(last.created_at, last.id) : null,
    };
  }

  /** Deletes expired records (and finished jobs left without any); returns how many assets went. */
  purgeExpired(now: number): number {
    const removed = this.sql.exec(
      "DELETE FROM assets WHERE expires_at IS NOT NULL AND expires_at <= ?",
      now,
    ).rowsWritten;
    if (this.ttlMs !== null) {
      this.sql.exec(
        `DELETE FROM jobs WHERE status IN ('completed', 'failed', 'cancelled', 'lost') AND finished_at <= ?
           AND NOT EXISTS (SELECT 1 FROM assets WHERE assets.job_id = jobs.id)`,
        now - this.ttlMs,
      );
    }
    return removed;
  }

  nextExpiry(): number | null {
    return this.sql
      .exec<{ at: number | null }>("SELECT MIN(expires_at) AS at FROM assets WHERE expires_at IS NOT NULL")
      .one().at;
  }
}

const LIVE = "(expires_at IS NULL OR expires_at > ?)";

function encodeCursor(created: number, id: string): string {
  return btoa(JSON.stringify([created, id])).replace(/=+$/, "");
}

/** A cursor that does not decode is an error for the caller, not a silent first page. */
export function decodeCursor(cursor: string): { created: number; id: string } | undefined {
  try {
    const [created, id] = JSON.parse(atob(cursor)) as [unknown, unknown];
    if (typeof created === "number" && typeof id === "string") return { created, id };
  } catch {
    // fall through
  }
  return undefined;
}
