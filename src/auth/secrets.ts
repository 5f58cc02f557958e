/**
 * Server-side random secrets (HMAC keys for download URLs and owner sessions): a configured
 * secret wins; otherwise a random key is created once and kept in KV, so nothing weak (like a key
 * derived from the owner's password) ever signs anything.
 */

/** Settled keys only: a pending KV read belongs to its request (workerd forbids cross-request I/O). */
const cache = new Map<string, CryptoKey>();

export async function hmacKey(env: Env, name: string, configured: string | undefined): Promise<CryptoKey> {
  const id = `${name}|${configured ? "secret" : "kv"}`;
  const cached = cache.get(id);
  if (cached) return cached;
  let material = configured;
  if (!material) {
    const kvKey = `secret/${name}/v1`;
    material = (await env.OAUTH_KV.get(kvKey)) ?? undefined;
    if (!material) {
      material = toHex(crypto.getRandomValues(new Uint8Array(32)));
      await env.OAUTH_KV.put(kvKey, material);
    }
  }
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(material),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  cache.set(id, key);
  return key;
}

export async function hmacHex(key: CryptoKey, message: string): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(message))));
}

export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

export function timingSafeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

export function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}
