/**
 * Workflows added at run time (add_workflow): the API graph and its sidecar under `workflows/` in
 * the R2 bucket, where the registry already reads them, so a new one is a tool within the
 * registry's cache window and needs no redeploy. Bundled workflows live in the Worker and are
 * never written or removed here.
 */
import type { ComfyGraph } from "../comfy/types";
import { forgetStoredWorkflows } from "./registry";

export const STORED_PREFIX = "workflows/";

export interface StoredWorkflow {
  id: string;
  graph: ComfyGraph;
  meta: Record<string, unknown>;
}

export type StoreOutcome = { ok: true; replaced: boolean } | { ok: false; exists: true };

const graphKey = (id: string) => `${STORED_PREFIX}${id}.json`;
const metaKey = (id: string) => `${STORED_PREFIX}${id}.meta.json`;

/**
 * Writes the sidecar first and the graph last: the registry lists graphs, so a reader never sees
 * a graph without its sidecar. Without `replace`, the graph is written only if no object has its
 * key (R2's conditional put), so two admins adding the same id at once cannot overwrite each other.
 */
export async function storeWorkflow(
  bucket: R2Bucket,
  workflow: StoredWorkflow,
  replace: boolean,
): Promise<StoreOutcome> {
  const existing = await bucket.head(graphKey(workflow.id));
  if (existing && !replace) return { ok: false, exists: true };
  const json = { httpMetadata: { contentType: "application/json" } };
  await bucket.put(metaKey(workflow.id), JSON.stringify(workflow.meta, null, 2), json);
  const written = await bucket.put(graphKey(workflow.id), JSON.stringify(workflow.graph, null, 2), {
    ...json,
    // Replacing: only the version we saw. Adding: only if still absent.
    onlyIf: existing ? { etagMatches: existing.etag } : { uploadedBefore: new Date(0) },
  });
  if (!written) return { ok: false, exists: true };
  forgetStoredWorkflows();
  return { ok: true, replaced: Boolean(existing) };
}

/** Removes both files; false when there was no stored workflow of that id. */
export async function removeStoredWorkflow(bucket: R2Bucket, id: string): Promise<boolean> {
  const existing = await bucket.head(graphKey(id));
  if (!existing) return false;
  await bucket.delete([graphKey(id), metaKey(id)]);
  forgetStoredWorkflows();
  return true;
}
