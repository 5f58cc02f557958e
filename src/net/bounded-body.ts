/**
 * Reads a body whose size a caller controls (a downloaded file, a page's request) without ever
 * holding more than a bound: a declared Content-Length over it is refused before reading, and a
 * stream that passes it (chunked, or lying about its length) is cancelled at once.
 */
export type Bounded = { ok: true; bytes: Uint8Array } | { ok: false; size: number };

export async function readBounded(message: Request | Response, maxBytes: number): Promise<Bounded> {
  const declared = Number(message.headers.get("Content-Length") ?? "0");
  if (declared > maxBytes) {
    await message.body?.cancel();
    return { ok: false, size: declared };
  }
  const reader = message.body?.getReader();
  if (!reader) return { ok: true, bytes: new Uint8Array() };
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return { ok: false, size };
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { ok: true, bytes };
}
