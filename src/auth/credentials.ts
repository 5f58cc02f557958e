/**
 * The secrets a caller can present, and what each one grants: the OWNER_PASSWORD, and the static
 * tokens of MCP_TOKENS with their scopes. Compared only inside the Guard, after the attempt has
 * been counted (src/auth/guard.ts); digests are compared in constant time.
 */
import { sha256Hex, timingSafeEqual } from "./crypto";

declare global {
  interface Env {
    /** The owner's passphrase: setting it turns on OAuth for hosted agents (secret). */
    OWNER_PASSWORD?: string;
    /** Named static tokens for CLIs and IDEs, `user:token[:scope+scope]`, comma-separated (secret). */
    MCP_TOKENS?: string;
  }
}

export const SCOPES = ["generate", "publish", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

const SCOPE_LIST = new RegExp(`^(${SCOPES.join("|")})(\\+(${SCOPES.join("|")}))*$`);

export interface StaticToken {
  user: string;
  token: string;
  scopes: Scope[];
}

export async function passwordMatches(env: Env, attempt: string): Promise<boolean> {
  if (!env.OWNER_PASSWORD) return false;
  return timingSafeEqual(await sha256Hex(attempt), await sha256Hex(env.OWNER_PASSWORD));
}

/**
 * `user:token` (every scope) or `user:token:scope+scope`; the user is the studio the token opens
 * ("owner" for your own CLIs). A token may contain ':' itself: the last ':'-part is read as scopes
 * only when it is nothing but known scope names joined by '+', so every `user:token` written
 * before scopes existed keeps its meaning (unless the token itself ends in such a part).
 */
export function parseTokens(raw: string | undefined): StaticToken[] {
  return (raw ?? "")
    .split(/[,\n]/)
    .map((entry) => entry.trim())
    .filter(Boolean)
    .flatMap((entry) => {
      const at = entry.indexOf(":");
      const user = entry.slice(0, at).trim();
      let token = entry.slice(at + 1).trim();
      let scopes: Scope[] = [...SCOPES];
      const last = token.lastIndexOf(":");
      if (last > 0 && SCOPE_LIST.test(token.slice(last + 1))) {
        scopes = [...new Set(token.slice(last + 1).split("+") as Scope[])];
        token = token.slice(0, last);
      }
      return at > 0 && /^[a-z0-9][a-z0-9_-]{0,63}$/i.test(user) && token.length >= 16 ? [{ user, token, scopes }] : [];
    });
}

/** The configured token a bearer credential presents, compared against every token in constant time. */
export async function matchToken(env: Env, authorization: string): Promise<StaticToken | undefined> {
  const presented = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1];
  if (!presented) return undefined;
  const digest = await sha256Hex(presented);
  let found: StaticToken | undefined;
  for (const entry of parseTokens(env.MCP_TOKENS)) {
    if (timingSafeEqual(digest, await sha256Hex(entry.token))) found ??= entry;
  }
  return found;
}
