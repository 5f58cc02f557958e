/**
 * The sign-in guard: one Durable Object for the whole gateway (instance "global"). It counts
 * failed sign-ins and failed bearer tokens atomically, BEFORE comparing the secret (a KV
 * read-then-write let a parallel burst through: src/auth/throttle.ts), keeps the signing keys it
 * creates (one key even when the first requests race), and remembers signed-out sessions.
 * Secrets are compared here, in the same call that reserved the attempt: one round trip.
 */
import { DurableObject } from "cloudflare:workers";
import { randomHex } from "./crypto";
import { type Scope, matchToken, passwordMatches } from "./credentials";
import { AttemptLedger, type AttemptKind, throttleLimits } from "./throttle";

export function guardOf(env: Env): DurableObjectStub<Guard> {
  return env.GUARD.getByName("global");
}

export type Throttled = { status: "throttled"; who: "address" | "network" | "everyone"; retryAfterSeconds: number };
export type SignInVerdict = { status: "ok" } | { status: "wrong"; left: number } | Throttled;
export type TokenVerdict = { status: "ok"; user: string; scopes: Scope[] } | { status: "wrong" } | Throttled;

export class Guard extends DurableObject<Env> {
  private readonly ledger: AttemptLedger;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.ledger = new AttemptLedger(ctx.storage.sql, throttleLimits(env));
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS signing_keys (name TEXT PRIMARY KEY, material TEXT NOT NULL);
                          CREATE TABLE IF NOT EXISTS ended_sessions (id TEXT PRIMARY KEY, expires INTEGER NOT NULL);`);
  }

  /** One owner sign-in attempt from `address`: counted, then the password compared. */
  async signIn(address: string, password: string): Promise<SignInVerdict> {
    return this.attempt("login", address, async () => ((await passwordMatches(this.env, password)) ? {} : undefined));
  }

  /** One bearer credential on /mcp-key (or /healthz) from `address`: counted, then compared. */
  async token(address: string, authorization: string): Promise<TokenVerdict> {
    const verdict = await this.attempt("token", address, () => matchToken(this.env, authorization));
    return verdict.status === "ok" ? { status: "ok", user: verdict.user, scopes: verdict.scopes } : verdict;
  }

  private async attempt<T extends object>(
    kind: AttemptKind,
    address: string,
    compare: () => Promise<T | undefined>,
  ): Promise<({ status: "ok" } & T) | { status: "wrong"; left: number } | Throttled> {
    const reservation = this.ledger.reserve(kind, address, Date.now());
    if (!reservation.ok)
      return { status: "throttled", who: reservation.who, retryAfterSeconds: reservation.retryAfterSeconds };
    const match = await compare();
    if (!match) return { status: "wrong", left: reservation.left };
    this.ledger.succeeded(reservation.id);
    return { status: "ok", ...match };
  }

  /**
   * The named signing key, created on first use. The KV copy an earlier version kept is adopted,
   * so download URLs and sessions signed before an upgrade stay valid.
   */
  async signingKey(name: string): Promise<string> {
    const kept = this.keptKey(name);
    if (kept) return kept;
    const legacy = await this.env.OAUTH_KV.get(`secret/${name}/v1`);
    // Whichever of two racing first calls gets here first wins; the other reads its key.
    this.ctx.storage.sql.exec(
      "INSERT OR IGNORE INTO signing_keys (name, material) VALUES (?, ?)",
      name,
      legacy ?? randomHex(32),
    );
    return this.keptKey(name)!;
  }

  private keptKey(name: string): string | undefined {
    return this.ctx.storage.sql
      .exec<{ material: string }>("SELECT material FROM signing_keys WHERE name = ?", name)
      .toArray()[0]?.material;
  }

  /** A signed-out session stays refused until it would have expired anyway. */
  async endSession(id: string, expiresAt: number): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM ended_sessions WHERE expires < ?", Date.now());
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO ended_sessions (id, expires) VALUES (?, ?)", id, expiresAt);
  }

  async sessionEnded(id: string): Promise<boolean> {
    return this.ctx.storage.sql.exec("SELECT 1 FROM ended_sessions WHERE id = ?", id).toArray().length > 0;
  }
}
