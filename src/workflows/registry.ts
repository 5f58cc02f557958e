/**
 * All workflows a user can run: the ones bundled at build time from workflows/, plus any stored
 * in the R2 bucket under `workflows/` (added with `wrangler r2 object put`, no redeploy). Each
 * becomes one MCP tool; names are the normalised file stem, de-duplicated with _2, _3…
 */
import { BUNDLED_WORKFLOWS, REJECTED_WORKFLOWS } from "./bundled.generated";
import { parseWorkflow, type WorkflowDefinition } from "./definition.ts";
import { normaliseName } from "./params.ts";

import type { RejectedWorkflow } from "./files";

export type { BundledWorkflowFile, RejectedWorkflow } from "./files";

export interface RegisteredWorkflow extends WorkflowDefinition {
  /** The MCP tool that runs it. */
  tool: string;
}

export interface WorkflowCatalogue {
  workflows: RegisteredWorkflow[];
  rejected: RejectedWorkflow[];
  /** The names workflow tools could not take (the fixed tools), to load the catalogue again. */
  reserved: ReadonlySet<string>;
}

const R2_PREFIX = "workflows/";
const R2_CACHE_MS = 30_000;
/** Biggest workflow file read from R2: graphs are small; anything larger is a mistake. */
const R2_MAX_BYTES = 2_000_000;

const bundled = BUNDLED_WORKFLOWS.flatMap((file) => {
  const parsed = parseWorkflow({ ...file, source: "bundled" });
  return parsed.ok ? [parsed.workflow] : [];
});

/** Settled listings only: a pending read belongs to its request (workerd forbids cross-request I/O). */
let r2Cache:
  | { at: number; bucket: R2Bucket; value: { workflows: WorkflowDefinition[]; rejected: RejectedWorkflow[] } }
  | undefined;

export async function loadCatalogue(env: Env, reserved: ReadonlySet<string>): Promise<WorkflowCatalogue> {
  const stored = await storedWorkflows(env);
  const taken = new Set(reserved);
  const workflows: RegisteredWorkflow[] = [];
  for (const workflow of [...bundled, ...stored.workflows.filter((w) => !bundled.some((b) => b.id === w.id))]) {
    const base = normaliseName(workflow.id);
    let tool = base;
    for (let n = 2; taken.has(tool); n++) tool = `${base}_${n}`;
    taken.add(tool);
    workflows.push({ ...workflow, tool });
  }
  return { workflows, rejected: [...REJECTED_WORKFLOWS, ...stored.rejected], reserved };
}

/** Workflows in R2, read at most every 30 s per isolate; a missing bucket simply has none. */
async function storedWorkflows(env: Env): Promise<{ workflows: WorkflowDefinition[]; rejected: RejectedWorkflow[] }> {
  const bucket = env.ASSETS_BUCKET;
  if (!bucket) return { workflows: [], rejected: [] };
  if (r2Cache && r2Cache.bucket === bucket && Date.now() - r2Cache.at < R2_CACHE_MS) return r2Cache.value;
  try {
    const value = await readBucket(bucket);
    r2Cache = { at: Date.now(), bucket, value };
    return value;
  } catch (error) {
    return {
      workflows: [],
      rejected: [
        {
          file: `r2:${R2_PREFIX}`,
          problem: `could not list the bucket (${error instanceof Error ? error.message : String(error)})`,
        },
      ],
    };
  }
}

async function readBucket(
  bucket: R2Bucket,
): Promise<{ workflows: WorkflowDefinition[]; rejected: RejectedWorkflow[] }> {
  const keys: R2Object[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix: R2_PREFIX, cursor, limit: 1000 });
    keys.push(...page.objects);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor && keys.length < 5000);
  const byKey = new Map(keys.map((object) => [object.key, object]));
  const workflows: WorkflowDefinition[] = [];
  const rejected: RejectedWorkflow[] = [];
  for (const object of keys) {
    const key = object.key;
    if (!key.endsWith(".json") || key.endsWith(".meta.json") || key.slice(R2_PREFIX.length).includes("/")) continue;
    const id = key.slice(R2_PREFIX.length, -".json".length);
    const graph = await readJson(bucket, object);
    const metaObject = byKey.get(`${R2_PREFIX}${id}.meta.json`);
    const meta = metaObject ? await readJson(bucket, metaObject) : { value: undefined };
    const parsed =
      "error" in graph
        ? { ok: false as const, problem: graph.error }
        : "error" in meta
          ? { ok: false as const, problem: `${id}.meta.json: ${meta.error}` }
          : parseWorkflow({ id, graph: graph.value, meta: meta.value, source: "r2" });
    if (parsed.ok) workflows.push(parsed.workflow);
    else rejected.push({ file: `r2:${key}`, problem: parsed.problem });
  }
  return { workflows, rejected };
}

async function readJson(bucket: R2Bucket, object: R2Object): Promise<{ value: unknown } | { error: string }> {
  if (object.size > R2_MAX_BYTES) return { error: `too large (${object.size} bytes; at most ${R2_MAX_BYTES})` };
  const body = await bucket.get(object.key);
  if (!body) return { error: "vanished while reading" };
  try {
    return { value: JSON.parse(await body.text()) };
  } catch (error) {
    return { error: `not valid JSON (${error instanceof Error ? error.message : String(error)})` };
  }
}

/** Test hook: forget the R2 listing so a test sees a workflow it just stored. */
export function forgetStoredWorkflows(): void {
  r2Cache = undefined;
}
