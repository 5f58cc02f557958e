/**
 * The owner's browser session: a signed, expiring cookie. The signature covers a digest of the
 * current OWNER_PASSWORD, so changing the password ends every session; signing out ends one
 * (the Guard remembers it until it would have expired). Forms of a signed-in page carry a CSRF
 * token derived from the session; the login form carries a double-submit token of its own.
 */
import { hmacHex, randomHex, sha256Hex, timingSafeEqual } from "./crypto";
import { guardOf } from "./guard";
import { hmacKey } from "./secrets";

export const OWNER = "owner";
export const SESSION_COOKIE = "__Host-owner-session";
export const CSRF_COOKIE = "__Host-login-csrf";
const SESSION_SECONDS = 12 * 3600;

export interface OwnerSession {
  id: string;
  expires: number;
}

/** The client's address as Cloudflare saw it (`wrangler dev` sets 127.0.0.1); "local" without one. */
export function clientAddress(request: Request): string {
  return request.headers.get("CF-Connecting-IP") ?? "local";
}

async function sessionSignature(env: Env, expires: number, id: string): Promise<string> {
  const password = await sha256Hex(env.OWNER_PASSWORD ?? "");
  return hmacHex(await hmacKey(env, "owner-session", undefined), `${OWNER}|${expires}|${id}|${password}`);
}

export async function sessionCookie(env: Env): Promise<string> {
  const expires = Math.floor(Date.now() / 1000) + SESSION_SECONDS;
  const id = randomHex(16);
  const sig = await sessionSignature(env, expires, id);
  return `${SESSION_COOKIE}=${expires}.${id}.${sig}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=${SESSION_SECONDS}`;
}

export const CLEAR_SESSION_COOKIE = `${SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0`;

/** The owner's session, if the request carries a valid one (signed, unexpired, not signed out). */
export async function ownerSession(env: Env, request: Request): Promise<OwnerSession | undefined> {
  if (!env.OWNER_PASSWORD) return undefined;
  const [expiresText, id, sig] = (readCookie(request, SESSION_COOKIE) ?? "").split(".");
  const expires = Number(expiresText);
  if (!id || !sig || !Number.isInteger(expires) || expires * 1000 < Date.now()) return undefined;
  if (!timingSafeEqual(await sessionSignature(env, expires, id), sig)) return undefined;
  if (await guardOf(env).sessionEnded(id)) return undefined;
  return { id, expires };
}

export async function endSession(env: Env, session: OwnerSession): Promise<void> {
  await guardOf(env).endSession(session.id, session.expires * 1000);
}

/** The CSRF token of the signed-in owner's forms: bound to the session, useless without its cookie. */
export async function sessionCsrf(env: Env, session: OwnerSession): Promise<string> {
  return hmacHex(await hmacKey(env, "owner-session", undefined), `csrf|${session.id}`);
}

export async function validSessionCsrf(env: Env, session: OwnerSession, presented: string): Promise<boolean> {
  return presented !== "" && timingSafeEqual(await sessionCsrf(env, session), presented);
}

export function newCsrfToken(): string {
  return randomHex(16);
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
