/**
 * Reading an asset's bytes from ComfyUI for publishing, never more than the caller can use: a
 * declared Content-Length over the limit is refused before the body is read, and a body without
 * one is read only until it passes the limit. A Worker isolate has 128 MB; a large video read
 * whole would end it.
 */
import { timedOut } from "../comfy/errors";

/** The bytes, or null when the file is larger than `limit` (its body is cancelled, not read). */
export async function readAtMost(
  response: Response,
  limit: number,
  route: string,
  timeoutMs: number,
): Promise<Uint8Array | null> {
  const declared = Number(response.headers.get("Content-Length") ?? Number.NaN);
  if (declared > limit) {
    await response.body?.cancel();
    return null;
  }
  if (!response.body) return new Uint8Array();
  const reader = response.body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut(route, timeoutMs)), timeoutMs);
  });
  const chunks: Uint8Array[] = [];
  let total = 0;
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), expired]);
      if (done) break;
      total += value.byteLength;
      if (total > limit) return null;
      chunks.push(value);
    }
    finished = true;
  } finally {
    clearTimeout(timer);
    // Over the limit or out of time: stop the transfer instead of draining it.
    if (!finished) reader.cancel().catch(() => undefined);
  }
  return concat(chunks, total);
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
