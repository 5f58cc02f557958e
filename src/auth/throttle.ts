/**
 * The ledger of sign-in and token attempts behind the Guard (one SQLite table). An attempt is
 * written down as a failure BEFORE the secret is compared and struck out if it was right, so a
 * parallel burst cannot outrun the count: every attempt past the limit is refused unevaluated.
 * Three budgets, each counted per kind (owner sign-in, static token):
 *   - per client address: `perAddress` failures per window;
 *   - per IPv6 /64 (one customer's network, where rotating addresses is free): `perNetwork`;
 *   - for everyone: `globalPerMinute` failures a minute, after which nobody is evaluated for a
 *     pause that doubles each time the ceiling is hit again (60 s, 2, 4, 8 min… up to the window).
 * A refused attempt is not evaluated, so it does not count; the right secret is refused too.
 */

export type AttemptKind = "login" | "token";

export interface ThrottleLimits {
  /** How long a failure counts against its address and network. */
  windowMs: number;
  perAddress: number;
  perNetwork: number;
  globalPerMinute: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export const DEFAULT_WINDOW_SECONDS = 15 * 60;

export function throttleLimits(env: Env): ThrottleLimits {
  const configured = Number(env.COMFY_MCP_AUTH_WINDOW_SECONDS);
  const windowSeconds =
    Number.isFinite(configured) && configured >= 1 ? Math.min(configured, 86_400) : DEFAULT_WINDOW_SECONDS;
  const windowMs = windowSeconds * 1000;
  return {
    windowMs,
    perAddress: 5,
    perNetwork: 10,
    globalPerMinute: 30,
    backoffBaseMs: 60_000,
    backoffMaxMs: Math.max(60_000, windowMs),
  };
}

declare global {
  interface Env {
    /** How long failed sign-ins and tokens count against an address (seconds; default 900). */
    COMFY_MCP_AUTH_WINDOW_SECONDS?: string;
  }
}

export type Reservation =
  | { ok: true; id: number; left: number }
  | { ok: false; who: "address" | "network" | "everyone"; retryAfterSeconds: number };

const MINUTE_MS = 60_000;

export class AttemptLedger {
  constructor(
    private readonly sql: SqlStorage,
    private readonly limits: ThrottleLimits,
  ) {
    sql.exec(`CREATE TABLE IF NOT EXISTS attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
                address TEXT NOT NULL, network TEXT, at INTEGER NOT NULL);
              CREATE INDEX IF NOT EXISTS attempts_by_time ON attempts(kind, at);
              CREATE TABLE IF NOT EXISTS pauses (kind TEXT PRIMARY KEY, until INTEGER NOT NULL,
                strikes INTEGER NOT NULL);`);
  }

  /**
   * Writes the attempt down as a failure, or refuses it. Synchronous from start to end, so no
   * other request of the Durable Object runs in between: that is what makes the count atomic.
   */
  reserve(kind: AttemptKind, address: string, now: number): Reservation {
    const { windowMs, perAddress, perNetwork, globalPerMinute } = this.limits;
    this.sql.exec("DELETE FROM attempts WHERE at <= ?", now - Math.max(windowMs, MINUTE_MS));

    const pause = this.pause(kind);
    if (pause && now < pause.until) return refusal("everyone", pause.until - now);
    if (this.count(kind, "1 = 1", [], now - MINUTE_MS).n >= globalPerMinute) return this.trip(kind, pause, now);

    const own = this.count(kind, "address = ?", [address], now - windowMs);
    if (own.n >= perAddress) return refusal("address", own.oldest + windowMs - now);
    const network = ipv6Network(address);
    if (network) {
      const shared = this.count(kind, "network = ?", [network], now - windowMs);
      if (shared.n >= perNetwork) return refusal("network", shared.oldest + windowMs - now);
    }
    const id = this.sql
      .exec<{ id: number }>(
        "INSERT INTO attempts (kind, address, network, at) VALUES (?, ?, ?, ?) RETURNING id",
        kind,
        address,
        network ?? null,
        now,
      )
      .one().id;
    return { ok: true, id, left: perAddress - own.n - 1 };
  }

  /** The secret was right: the attempt is not a failure after all. */
  succeeded(id: number): void {
    this.sql.exec("DELETE FROM attempts WHERE id = ?", id);
  }

  private count(kind: AttemptKind, where: string, bindings: string[], since: number): { n: number; oldest: number } {
    return this.sql
      .exec<{ n: number; oldest: number | null }>(
        `SELECT COUNT(*) AS n, MIN(at) AS oldest FROM attempts WHERE kind = ? AND at > ? AND ${where}`,
        kind,
        since,
        ...bindings,
      )
      .toArray()
      .map((row) => ({ n: row.n, oldest: row.oldest ?? since }))[0]!;
  }

  private pause(kind: AttemptKind): { until: number; strikes: number } | undefined {
    return this.sql
      .exec<{ until: number; strikes: number }>("SELECT until, strikes FROM pauses WHERE kind = ?", kind)
      .toArray()[0];
  }

  /** The ceiling is hit: pause everyone, twice as long as last time unless things were calm since. */
  private trip(kind: AttemptKind, previous: { until: number; strikes: number } | undefined, now: number): Reservation {
    const { backoffBaseMs, backoffMaxMs } = this.limits;
    const calmSince = previous ? now - previous.until : Number.POSITIVE_INFINITY;
    const strikes = previous && calmSince < backoffMaxMs ? previous.strikes + 1 : 1;
    const pauseMs = Math.min(backoffBaseMs * 2 ** (strikes - 1), backoffMaxMs);
    this.sql.exec(
      "INSERT OR REPLACE INTO pauses (kind, until, strikes) VALUES (?, ?, ?)",
      kind,
      now + pauseMs,
      strikes,
    );
    return refusal("everyone", pauseMs);
  }
}

function refusal(who: "address" | "network" | "everyone", waitMs: number): Reservation {
  return { ok: false, who, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
}

/**
 * The /64 an IPv6 address belongs to (its first four groups), or undefined for IPv4, IPv4-mapped
 * IPv6 (those are one IPv4 client each, not a shared network) and anything unreadable.
 */
export function ipv6Network(address: string): string | undefined {
  if (!address.includes(":")) return undefined;
  const groups = expandIpv6(address.split("%")[0]!.toLowerCase());
  if (!groups) return undefined;
  if (groups.slice(0, 5).every((g) => g === 0) && (groups[5] === 0xffff || groups[5] === 0)) return undefined;
  return groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(":");
}

function expandIpv6(text: string): number[] | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (const [i, piece] of pieces.entries()) {
      if (i === pieces.length - 1 && piece.includes(".")) {
        const octets = piece.split(".").map(Number);
        if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) return undefined;
        out.push((octets[0]! << 8) | octets[1]!, (octets[2]! << 8) | octets[3]!);
      } else {
        if (!/^[0-9a-f]{1,4}$/.test(piece)) return undefined;
        out.push(Number.parseInt(piece, 16));
      }
    }
    return out;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (!head || !tail) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  if (head.length + tail.length > 7) return undefined;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}
