/**
 * Server-side random secrets (HMAC keys for download URLs and owner sessions): a configured
 * secret wins; otherwise the Guard creates a random key once and keeps it, so nothing weak (like
 * a key derived from the owner's password) ever signs anything, and two first requests running
 * in parallel cannot each invent a different key (a KV read-then-write could).
 */
import { guardOf } from "./guard";

export { hmacHex, sha256Hex, timingSafeEqual, toHex } from "./crypto";

/** Settled keys only: a pending read belongs to its request (workerd forbids cross-request I/O). */
const cache = new Map<string, CryptoKey>();

export async function hmacKey(env: Env, name: string, configured: string | undefined): Promise<CryptoKey> {
  const id = `${name}|${configured ? "secret" : "kept"}`;
  const cached = cache.get(id);
  if (cached) return cached;
  const material = configured || (await guardOf(env).signingKey(name));
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
