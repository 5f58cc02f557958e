/**
 * The owner's sign-in: the OWNER_PASSWORD compared through SHA-256 digests in constant time,
 * failed attempts rate-limited per client address, and a signed, expiring session cookie.
 */
import { hmacHex, hmacKey, sha256Hex, timingSafeEqual, toHex } from "./secrets";

declare global {
  interface Env {
    /** The owner's passphrase: setting it turns on OAuth for hosted agents (secret). */
    OWNER_PASSWORD?: string;
    /** Named static tokens for CLIs and IDEs, `user:token,user2:token2` (secret). */
    MCP_TOKENS?: string;
  }
}

export const OWNER = "owner";
export const SESSION_COOKIE = "__Host-owner-session";
export const CSRF_COOKIE = "__Host-login-csrf";
const SESSION_SECONDS = 12 * 3600;
export const MAX_FAILED_LOGINS = 5;
const FAILURE_WINDOW_SECONDS = 15 * 60;

export async function passwordMatches(env: Env, attempt: string): Promise<boolean> {
  if (!env.OWNER_PASSWORD) return false;
  return timingSafeEqual(await sha256Hex(attempt), await sha256Hex(env.OWNER_PASSWORD));
}

export function clientAddress(request: Request): string {
  return request.headers.get("CF-Connecting-IP") ?? "local";
}

export async function failedLogins(env: Env, address: string): Promise<number> {
  return Number((await env.OAUTH_KV.get(`login-failures/${address}`)) ?? "0");
}

export async function recordFailedLogin(env: Env, address: string): Promise<number> {
  const count = (await failedLogins(env, address)) + 1;
  await env.OAUTH_KV.put(`login-failures/${address}`, String(count), { expirationTtl: FAILURE_WINDOW_SECONDS });
  return count;
}

export async function sessionCookie(env: Env): Promise<string> {
  const expires = Math.floor(Date.now() / 1000) + SESSION_SECONDS;
  const sig = await hmacHex(await hmacKey(env, "owner-session", undefined), `${OWNER}|${expires}`);
  return `${SESSION_COOKIE}=${expires}.${sig}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=${SESSION_SECONDS}`;
}

export async function hasSession(env: Env, request: Request): Promise<boolean> {
  const value = readCookie(request, SESSION_COOKIE);
  const [expires, sig] = (value ?? "").split(".");
  if (!expires || !sig || Number(expires) * 1000 < Date.now()) return false;
  return timingSafeEqual(await hmacHex(await hmacKey(env, "owner-session", undefined), `${OWNER}|${expires}`), sig);
}

export function newCsrfToken(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(16)));
}

export function csrfCookie(token: string): string {
  return `${CSRF_COOKIE}=${token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=1800`;
}

export function readCookie(request: Request, name: string): string | undefined {
  for (const part of (request.headers.get("Cookie") ?? "").split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return rest.join("=");
  }
  return undefined;
}

/** `user:token` pairs; the user is the studio the token opens (use "owner" for your own CLIs). */
export function parseTokens(raw: string | undefined): Array<{ user: string; token: string }> {
  return (raw ?? "")
    .split(/[,\n]/)
    .map((entry) => entry.trim())
    .filter(Boolean)
    .flatMap((entry) => {
      const at = entry.indexOf(":");
      const user = entry.slice(0, at).trim();
      const token = entry.slice(at + 1).trim();
      return at > 0 && /^[a-z0-9][a-z0-9_-]{0,63}$/i.test(user) && token.length >= 16 ? [{ user, token }] : [];
    });
}

/** The user a bearer token belongs to, compared in constant time against every configured token. */
export async function tokenUser(env: Env, authorization: string | null): Promise<string | undefined> {
  const presented = /^Bearer\s+(\S+)$/i.exec(authorization ?? "")?.[1];
  if (!presented) return undefined;
  const digest = await sha256Hex(presented);
  let found: string | undefined;
  for (const { user, token } of parseTokens(env.MCP_TOKENS)) {
    if (timingSafeEqual(digest, await sha256Hex(token))) found ??= user;
  }
  return found;
}
