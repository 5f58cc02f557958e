/**
 * The studio's SQLite schema, applied in order and recorded in `schema_migrations`, so a deployed
 * Durable Object upgrades itself the first time new code touches it.
 */

const MIGRATIONS: string[] = [
  // 1: jobs and the assets they produced.
  `CREATE TABLE jobs (
     id TEXT PRIMARY KEY,              -- = ComfyUI prompt_id (a canonical UUID v4 we mint)
     workflow_id TEXT NOT NULL,
     tool TEXT NOT NULL,
     status TEXT NOT NULL,             -- submitting | queued | running | completed | failed | cancelled | lost
     params TEXT NOT NULL,             -- JSON: typed parameters used
     graph TEXT NOT NULL,              -- JSON: the exact graph submitted
     client_id TEXT,                   -- WebSocket clientId the prompt was submitted with
     error TEXT,                       -- JSON: {kind, message, ...}
     node_errors TEXT,                 -- JSON: outputs ComfyUI dropped on a partial accept
     missing_checks INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL,
     started_at INTEGER,
     finished_at INTEGER,
     updated_at INTEGER NOT NULL
   );
   CREATE INDEX jobs_unfinished ON jobs(status) WHERE status IN ('submitting', 'queued', 'running');
   CREATE TABLE assets (
     id TEXT PRIMARY KEY,
     job_id TEXT NOT NULL REFERENCES jobs(id),
     node_id TEXT NOT NULL,
     filename TEXT NOT NULL,
     subfolder TEXT NOT NULL,
     folder_type TEXT NOT NULL,
     output_key TEXT NOT NULL,
     mime_type TEXT NOT NULL,
     kind TEXT NOT NULL,
     animated INTEGER NOT NULL,
     width INTEGER,
     height INTEGER,
     bytes_size INTEGER,
     workflow_id TEXT NOT NULL,
     tool TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     -- One record per file per job: a cached rerun that reports an older job's file gets its own
     -- record with its own provenance instead of the older job's (original-server.md defect 18).
     UNIQUE (job_id, folder_type, subfolder, filename)
   );
   CREATE INDEX assets_by_job ON assets(job_id);
   CREATE INDEX assets_by_time ON assets(created_at DESC);`,
  // 2: provenance (ComfyUI's history entry), sessions, retention, durations, layered defaults.
  `ALTER TABLE jobs ADD COLUMN history TEXT;
   ALTER TABLE jobs ADD COLUMN session TEXT;
   ALTER TABLE assets ADD COLUMN expires_at INTEGER;
   ALTER TABLE assets ADD COLUMN duration REAL;
   ALTER TABLE assets ADD COLUMN session TEXT;
   CREATE INDEX assets_by_expiry ON assets(expires_at) WHERE expires_at IS NOT NULL;
   CREATE TABLE defaults (
     namespace TEXT NOT NULL,
     key TEXT NOT NULL,
     value TEXT NOT NULL,           -- JSON scalar
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (namespace, key)
   );`,
  // 3: the backend pool. '' = made before the pool existed, on the (then only) first backend.
  `ALTER TABLE jobs ADD COLUMN backend TEXT NOT NULL DEFAULT '';
   ALTER TABLE jobs ADD COLUMN routing TEXT;              -- JSON RouteRequest, to re-route on failover
   ALTER TABLE jobs ADD COLUMN resubmit INTEGER NOT NULL DEFAULT 0;  -- the caller asked: move it if its backend goes down
   ALTER TABLE jobs ADD COLUMN movable INTEGER NOT NULL DEFAULT 0;   -- not pinned, no uploaded inputs: may go elsewhere if submission fails
   ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
   ALTER TABLE jobs ADD COLUMN orphaned_at INTEGER;       -- lost because its backend went down; rechecked when it returns
   CREATE INDEX jobs_orphaned ON jobs(orphaned_at) WHERE orphaned_at IS NOT NULL;
   ALTER TABLE assets ADD COLUMN backend TEXT NOT NULL DEFAULT '';`,
  // 4: which path settled each job, and the one clientId this studio uses with each backend (kept
  // across restarts so a reconnect still receives the events of jobs submitted before it).
  `ALTER TABLE jobs ADD COLUMN completed_via TEXT;   -- event | reconcile | reconnect | get_job | orphan_check | cancel | submission | failover
   CREATE TABLE socket_ids (
     backend TEXT PRIMARY KEY,
     client_id TEXT NOT NULL
   );`,
  // 5: jobs per minute are counted at every submission (per-user limits).
  `CREATE INDEX jobs_by_time ON jobs(created_at);`,
];

/** Applies every migration not applied yet (up to `target`, for tests of an upgrade). */
export function migrate(sql: SqlStorage, target = MIGRATIONS.length): void {
  sql.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
  const row = sql.exec<{ version: number | null }>("SELECT MAX(version) AS version FROM schema_migrations").one();
  for (let version = (row.version ?? 0) + 1; version <= target; version++) {
    sql.exec(MIGRATIONS[version - 1]!);
    sql.exec("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", version, Date.now());
  }
}

/**
 * Jobs and assets from before the pool carry no backend: they were made on the single ComfyUI of
 * that time, which is the first configured backend now (COMFYUI_URL is the backend "default").
 */
export function adoptLegacyRecords(sql: SqlStorage, firstBackend: string): void {
  sql.exec("UPDATE jobs SET backend = ? WHERE backend = ''", firstBackend);
  sql.exec("UPDATE assets SET backend = ? WHERE backend = ''", firstBackend);
}
