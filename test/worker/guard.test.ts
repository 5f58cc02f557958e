// The sign-in guard inside workerd (issue #13, findings 2 and 10): the attempt ledger counts
// before comparing, per address, per IPv6 /64 and for everyone with a doubling pause; the Guard
// object cuts a parallel burst at 5; per-token scopes in MCP_TOKENS; one signing key even when
// the first requests race.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { parseTokens } from "../../src/auth/credentials";
import type { Guard } from "../../src/auth/guard";
import { hmacHex, hmacKey } from "../../src/auth/secrets";
import { AttemptLedger, type ThrottleLimits, ipv6Network } from "../../src/auth/throttle";

const LIMITS: ThrottleLimits = {
  windowMs: 900_000,
  perAddress: 5,
  perNetwork: 10,
  globalPerMinute: 30,
  backoffBaseMs: 60_000,
  backoffMaxMs: 900_000,
};

/** A ledger on a fresh Guard instance's SQLite, driven with explicit times. */
async function withLedger<T>(run: (ledger: AttemptLedger) => T): Promise<T> {
  const stub = env.GUARD.getByName(`ledger-${crypto.randomUUID()}`);
  return runInDurableObject(stub, (_instance: Guard, state) => run(new AttemptLedger(state.storage.sql, LIMITS)));
}

describe("attempt ledger", () => {
  it("per address: 5 reserved, the 6th refused until the oldest failure leaves the window; a success is struck out", async () => {
    await withLedger((ledger) => {
      const t0 = 1_000_000;
      const first = ledger.reserve("login", "203.0.113.1", t0);
      expect(first).toMatchObject({ ok: true, left: 4 });
      if (first.ok) ledger.succeeded(first.id); // the right password: not a failure
      for (let i = 0; i < 5; i++) expect(ledger.reserve("login", "203.0.113.1", t0 + i * 1000).ok).toBe(true);
      expect(ledger.reserve("login", "203.0.113.1", t0 + 10_000)).toEqual({
        ok: false,
        who: "address",
        retryAfterSeconds: 890,
      });
      // Other addresses and the other kind are not affected.
      expect(ledger.reserve("login", "203.0.113.2", t0 + 10_000).ok).toBe(true);
      expect(ledger.reserve("token", "203.0.113.1", t0 + 10_000).ok).toBe(true);
      // Still refused a moment before the window passes, then one slot frees per expiring failure.
      expect(ledger.reserve("login", "203.0.113.1", t0 + 899_999).ok).toBe(false);
      expect(ledger.reserve("login", "203.0.113.1", t0 + 900_000)).toMatchObject({ ok: true, left: 0 });
    });
  });

  it("per IPv6 /64: rotating addresses inside one /64 gets 10 in all; another /64 is not affected", async () => {
    await withLedger((ledger) => {
      const t0 = 5_000_000;
      const outcomes = Array.from({ length: 12 }, (_, i) => ledger.reserve("login", `2001:db8:1:2::${i + 1}`, t0 + i));
      expect(outcomes.filter((o) => o.ok)).toHaveLength(10);
      expect(outcomes.slice(10)).toEqual([
        { ok: false, who: "network", retryAfterSeconds: 900 },
        { ok: false, who: "network", retryAfterSeconds: 900 },
      ]);
      expect(ledger.reserve("login", "2001:db8:1:3::1", t0 + 20).ok).toBe(true);
    });
  });

  it("for everyone: 30 failures in a minute pause every client, 60 s then 120 s when it happens again", async () => {
    await withLedger((ledger) => {
      const t0 = 9_000_000;
      for (let i = 0; i < 30; i++) expect(ledger.reserve("token", `198.51.100.${i}`, t0 + i).ok).toBe(true);
      expect(ledger.reserve("token", "192.0.2.1", t0 + 100)).toEqual({
        ok: false,
        who: "everyone",
        retryAfterSeconds: 60,
      });
      expect(ledger.reserve("token", "192.0.2.2", t0 + 30_000)).toMatchObject({ ok: false, who: "everyone" });
      expect(ledger.reserve("login", "192.0.2.2", t0 + 30_000).ok).toBe(true); // sign-in has its own ceiling
      const resumed = t0 + 60_100;
      for (let i = 0; i < 30; i++) expect(ledger.reserve("token", `198.51.101.${i}`, resumed + i).ok).toBe(true);
      expect(ledger.reserve("token", "192.0.2.3", resumed + 100)).toEqual({
        ok: false,
        who: "everyone",
        retryAfterSeconds: 120,
      });
    });
  });

  it("reads the /64 of every IPv6 notation, and none for IPv4 or IPv4-mapped addresses", () => {
    expect(ipv6Network("2001:db8:1:2::1")).toBe("2001:db8:1:2");
    expect(ipv6Network("2001:0DB8:0001:0002:aaaa:bbbb:cccc:dddd")).toBe("2001:db8:1:2");
    expect(ipv6Network("2001:db8::1")).toBe("2001:db8:0:0");
    expect(ipv6Network("fe80::1%eth0")).toBe("fe80:0:0:0");
    expect(ipv6Network("2001:db8:1:2:3:4:192.0.2.1")).toBe("2001:db8:1:2");
    expect(ipv6Network("::ffff:192.0.2.1")).toBeUndefined();
    expect(ipv6Network("192.0.2.1")).toBeUndefined();
    expect(ipv6Network("local")).toBeUndefined();
    expect(ipv6Network("1::2::3")).toBeUndefined();
  });
});

describe("the Guard object", () => {
  it("50 parallel wrong tokens from one address: at most 5 are compared, the rest refused with a retry time", async () => {
    const guard = env.GUARD.getByName(`burst-${crypto.randomUUID()}`);
    const verdicts = await Promise.all(
      Array.from({ length: 50 }, () => guard.token("203.0.113.50", "Bearer tok_wrong_wrong_wrong_wrong")),
    );
    expect(verdicts.filter((v) => v.status === "wrong")).toHaveLength(5);
    const refused = verdicts.filter((v) => v.status === "throttled");
    expect(refused).toHaveLength(45);
    expect(refused[0]).toMatchObject({ who: "address", retryAfterSeconds: expect.any(Number) });
  });
});

describe("static tokens with scopes", () => {
  it("`user:token` grants every scope, `user:token:a+b` those scopes; a ':' inside a token stays part of it", () => {
    expect(
      parseTokens(
        [
          "owner:tok_owner_1234567890abcdef",
          "gen:tok_gen_1234567890abcdef:generate",
          "pub:tok_pub_1234567890abcdef:generate+publish+publish",
          "colon:tok:with:colons_1234567890",
          "notscope:tok_1234567890abcdef:everything",
          "short:tok_x:admin",
          "bad user:tok_1234567890abcdef",
        ].join(","),
      ),
    ).toEqual([
      { user: "owner", token: "tok_owner_1234567890abcdef", scopes: ["generate", "publish", "admin"] },
      { user: "gen", token: "tok_gen_1234567890abcdef", scopes: ["generate"] },
      { user: "pub", token: "tok_pub_1234567890abcdef", scopes: ["generate", "publish"] },
      { user: "colon", token: "tok:with:colons_1234567890", scopes: ["generate", "publish", "admin"] },
      { user: "notscope", token: "tok_1234567890abcdef:everything", scopes: ["generate", "publish", "admin"] },
    ]);
  });
});

describe("signing keys", () => {
  it("parallel first requests all get the same kept key (a KV read-then-write gave each its own)", async () => {
    const name = `race-${crypto.randomUUID()}`;
    const signatures = await Promise.all(
      Array.from({ length: 8 }, async () => hmacHex(await hmacKey(env, name, undefined), "message")),
    );
    expect(new Set(signatures).size).toBe(1);
  });
});
