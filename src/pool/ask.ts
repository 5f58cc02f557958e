/** Asking every backend of the pool the same question, keeping each one's answer or error. */
import type { ComfyClient } from "../comfy/client";

export type Answer<T> = { backend: string; ok: true; value: T } | { backend: string; ok: false; error: string };

/**
 * Asks every backend at once and keeps each answer or error, so one machine being down never
 * hides the others. When none answers, the first error is thrown: it says how to bring one back.
 */
export async function askAll<T>(
  clients: ComfyClient[],
  ask: (client: ComfyClient) => Promise<T>,
): Promise<Answer<T>[]> {
  const reads = await Promise.allSettled(clients.map(ask));
  if (reads.every((read) => read.status === "rejected")) throw (reads[0] as PromiseRejectedResult).reason;
  return reads.map((read, index) => {
    const backend = clients[index]!.connection.name;
    if (read.status === "fulfilled") return { backend, ok: true, value: read.value };
    return { backend, ok: false, error: read.reason instanceof Error ? read.reason.message : String(read.reason) };
  });
}
