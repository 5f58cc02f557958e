// Safe on the open internet, end to end over wrangler dev: OAuth discovery, the authorization-code
// + PKCE flow driven in a real headless Chromium (login, consent, code, tokens, SDK v1 and v2
// clients, refresh rotation, revocation, the owner's /grants page and sign-out), static tokens for
// CLIs on /mcp-key (with per-token scopes), and a security suite that tries each attack, prints
// the table of outcomes and requires every row to be refused with the exact status and error it
// names: token and PKCE abuse, open redirects, CSRF, framing, XSS, cross-user access, traversal,
// SSRF, sign-in and token throttling (each attack "from" its own CF-Connecting-IP, which
// `wrangler dev` passes through), grant revocation, sign-out and a password change.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import {
  OAuthDriver,
  hiddenFields,
  launchChromium,
  markdownTable,
  pkce,
  randomState,
  rawMcp,
  startCallbackServer,
} from "./browser.mjs";
import { connectV1, connectV2 } from "./clients.mjs";
import { startGateway } from "./gateway.mjs";

const PASSWORD = "correct horse battery";
const OWNER_TOKEN = "tok_owner_1234567890abcdef";
const MALLORY_TOKEN = "tok_mallory_1234567890abcdef";
/** A static token limited to the `generate` scope (`user:token:scopes`). */
const GEN_TOKEN = "tok_gen_only_1234567890abcdef";
/** Failed sign-ins and tokens count this long (seconds): short, so a test can wait for the window to pass. */
const AUTH_WINDOW_SECONDS = 12;
const VARS = {
  OWNER_PASSWORD: PASSWORD,
  MCP_TOKENS: `owner:${OWNER_TOKEN},mallory:${MALLORY_TOKEN},gen:${GEN_TOKEN}:generate`,
  DOWNLOAD_SIGNING_KEY: "k",
  COMFY_MCP_WAIT_SECONDS: "30",
  COMFY_MCP_AUTH_WINDOW_SECONDS: String(AUTH_WINDOW_SECONDS),
};

let fake;
let gateway;
let callback;
let resource;
let keyUrl;

const bearer = (token) => ({ Authorization: `Bearer ${token}` });
/** `wrangler dev` takes the client address from this header: each attack comes "from" its own address. */
const fromAddress = (address) => ({ "CF-Connecting-IP": address });
const text = (result) => result?.content?.find((c) => c.type === "text")?.text ?? "";
const randomToken = (length) => randomBytes(length).toString("base64url").slice(0, length);
const json = (body) => {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
};

beforeAll(async () => {
  fake = await startFakeComfy({ port: 0, stepDelayMs: 1, nodeDelayMs: 1 });
  callback = await startCallbackServer();
  gateway = await startGateway({ comfyUrl: fake.url, vars: VARS });
  resource = `${gateway.url}/mcp`;
  keyUrl = `${gateway.url}/mcp-key`;
});

afterAll(async () => {
  await gateway?.stop();
  await callback?.close();
  await fake?.close();
});

const driverFor = () => new OAuthDriver(gateway.url, { password: PASSWORD, redirectUri: callback.redirectUri });

describe("OAuth discovery", () => {
  it("publishes authorization-server and protected-resource metadata; /mcp without a token is a 401 challenge", async () => {
    const as = await (await fetch(`${gateway.url}/.well-known/oauth-authorization-server`)).json();
    const abs = (value) => new URL(value, gateway.url).href;
    expect(new URL(as.issuer).origin).toBe(gateway.url);
    expect(abs(as.authorization_endpoint)).toBe(`${gateway.url}/authorize`);
    expect(abs(as.token_endpoint)).toBe(`${gateway.url}/oauth/token`);
    expect(abs(as.registration_endpoint)).toBe(`${gateway.url}/oauth/register`);
    expect(as.code_challenge_methods_supported).toContain("S256");
    expect(as.scopes_supported).toEqual(expect.arrayContaining(["generate", "publish", "admin"]));
    const prm = await fetch(`${gateway.url}/.well-known/oauth-protected-resource/mcp`);
    expect(prm.status).toBe(200);
    expect((await prm.json()).resource).toBe(resource);
    const challenge = await rawMcp(resource);
    expect(challenge.status).toBe(401);
    expect(challenge.headers.get("www-authenticate")).toMatch(/resource_metadata/);
  });
});

describe("browser: authorization code + PKCE in headless Chromium", () => {
  it("registers, logs in (wrong then right password), consents, exchanges the code, calls tools with SDK v1 and v2, refreshes and revokes", async () => {
    const driver = driverFor();
    const client = await driver.register();
    const clientId = client.client_id;
    const browser = await launchChromium();
    let tokens;
    try {
      const page = await (await browser.newContext()).newPage();
      const isLoginPost = (r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/login";

      // 1. Not signed in: /authorize shows the login page, anti-framing headers on.
      const first = pkce();
      const deniedState = randomState();
      const login = await page.goto(driver.authorizeUrl({ clientId, challenge: first.challenge, state: deniedState }));
      expect(login.status()).toBe(200);
      expect(login.headers()["content-security-policy"]).toMatch(/frame-ancestors 'none'/);
      expect(login.headers()["x-frame-options"]).toMatch(/^deny$/i);
      const loginForm = page.locator('form[method="post" i][action="/login"]');
      expect(await loginForm.count()).toBe(1);
      expect(await loginForm.locator('input[type="password"][name="password"]').count()).toBe(1);
      expect(await loginForm.locator('input[type="hidden"][name="csrf"]').count()).toBe(1);
      expect(await loginForm.locator('input[type="hidden"][name="next"]').count()).toBe(1);

      // 2. A wrong password: 401 and the error on the page.
      await loginForm.locator('input[name="password"]').fill("Tr0ub4dor&3");
      const [wrong] = await Promise.all([
        page.waitForResponse(isLoginPost),
        loginForm.getByRole("button", { name: "Sign in" }).click(),
      ]);
      expect(wrong.status()).toBe(401);
      await page.getByText("Wrong password").first().waitFor({ timeout: 10_000 });

      // 3. The right one: 303 back to /authorize with the owner session cookie, then the consent page.
      await page.locator('form[action="/login"] input[name="password"]').fill(PASSWORD);
      const [right] = await Promise.all([
        page.waitForResponse(isLoginPost),
        page.locator('form[action="/login"]').getByRole("button", { name: "Sign in" }).click(),
      ]);
      expect(right.status()).toBe(303);
      expect(await right.headerValue("set-cookie")).toMatch(/__Host-owner-session=/);
      const consent = page.locator('form[method="post" i][action="/authorize/consent"]');
      await consent.waitFor({ timeout: 15_000 });
      expect((await page.context().cookies()).map((c) => c.name)).toContain("__Host-owner-session");

      // 4. The consent page: the escaped client name, the redirect host, one ticked box per requested scope.
      const bodyText = await page.locator("body").textContent();
      expect(bodyText).toContain("Test <b>client</b>");
      expect(await page.locator("b", { hasText: /^client$/ }).count()).toBe(0);
      expect(bodyText).toContain(new URL(callback.redirectUri).hostname);
      const boxes = await consent
        .locator('input[type="checkbox"][name="scope"]')
        .evaluateAll((els) => els.map((e) => [e.value, e.checked]));
      expect(boxes).toEqual([
        ["generate", true],
        ["publish", true],
      ]);
      expect(await consent.locator('input[type="hidden"][name="handle"]').count()).toBe(1);
      expect((await consent.locator('button[name="decision"][value="approve"]').textContent()).trim()).toBe("Allow");
      expect((await consent.locator('button[name="decision"][value="deny"]').textContent()).trim()).toBe("Deny");

      // 5. Deny: back to the client with access_denied and its state, no code.
      await Promise.all([
        page.waitForURL((u) => u.href.startsWith(callback.redirectUri), { timeout: 15_000 }),
        consent.getByRole("button", { name: "Deny" }).click(),
      ]);
      const denied = new URL(page.url());
      expect(denied.searchParams.get("error")).toBe("access_denied");
      expect(denied.searchParams.get("state")).toBe(deniedState);
      expect(denied.searchParams.get("code")).toBeNull();

      // 6. Again, signed in now: straight to consent; Allow → the code at the redirect URI.
      const { verifier, challenge } = pkce();
      const state = randomState();
      await page.goto(driver.authorizeUrl({ clientId, challenge, state }));
      await consent.waitFor({ timeout: 15_000 });
      await Promise.all([
        page.waitForURL((u) => u.href.startsWith(callback.redirectUri), { timeout: 15_000 }),
        consent.getByRole("button", { name: "Allow" }).click(),
      ]);
      const redirected = new URL(page.url());
      expect(redirected.searchParams.get("state")).toBe(state);
      const code = redirected.searchParams.get("code");
      expect(code).toBeTruthy();
      expect(callback.hits.some((hit) => hit.includes(encodeURIComponent(code)) || hit.includes(code))).toBe(true);

      // 7. Exchange it with the verifier.
      const exchanged = await driver.exchange({ code, verifier, client });
      expect(exchanged.status, JSON.stringify(exchanged.json)).toBe(200);
      tokens = exchanged.json;
      expect(tokens).toMatchObject({ access_token: expect.any(String), refresh_token: expect.any(String) });
      expect(tokens.token_type).toMatch(/^bearer$/i);
      expect(tokens.scope.split(" ").sort()).toEqual(["generate", "publish"]);

      // 7b. The owner's /grants page lists this client (same headers as every page); Sign out ends the session.
      const grants = await page.goto(`${gateway.url}/grants`);
      expect(grants.status()).toBe(200);
      expect(grants.headers()["content-security-policy"]).toMatch(/frame-ancestors 'none'/);
      const row = page.locator("ul.grants li", { hasText: clientId });
      expect(await row.count()).toBe(1);
      expect(await row.getByRole("button", { name: "Revoke" }).count()).toBe(1);
      const [signOut] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/logout"),
        page.getByRole("button", { name: "Sign out" }).click(),
      ]);
      expect(signOut.status()).toBe(200);
      await page.getByText("You are signed out").waitFor({ timeout: 10_000 });
      expect((await page.context().cookies()).map((c) => c.name)).not.toContain("__Host-owner-session");
      await page.goto(`${gateway.url}/grants`);
      expect(await page.locator('form[action="/login"]').count(), "signed out: /grants asks to sign in").toBe(1);
    } finally {
      await browser.close();
    }

    // 8. Both SDK generations call tools with the access token.
    for (const connect of [connectV1, connectV2]) {
      const mcp = await connect(resource, bearer(tokens.access_token));
      try {
        const models = await mcp.call("list_models");
        expect(models.isError, `${mcp.era}: ${text(models)}`).toBeFalsy();
        const defaults = await mcp.call("get_defaults");
        expect(defaults.isError, `${mcp.era}: ${text(defaults)}`).toBeFalsy();
        expect(defaults.structuredContent.image).toBeTruthy();
      } finally {
        await mcp.close();
      }
    }

    // 9. Refresh rotates: a new access and refresh token; the new access token works. Per the
    // provider's docs the previous refresh token stays valid only until its replacement is used.
    const refresh = (token) => driver.token({ grant_type: "refresh_token", refresh_token: token, client_id: clientId });
    const second = await refresh(tokens.refresh_token);
    expect(second.status, JSON.stringify(second.json)).toBe(200);
    expect(second.json.access_token).not.toBe(tokens.access_token);
    expect(second.json.refresh_token).not.toBe(tokens.refresh_token);
    expect((await rawMcp(resource, bearer(second.json.access_token))).status).toBe(200);
    const third = await refresh(second.json.refresh_token);
    expect(third.status, JSON.stringify(third.json)).toBe(200);
    const stale = await refresh(tokens.refresh_token);
    expect(stale.status).toBe(400);
    expect(stale.json.error).toBe("invalid_grant");
    expect((await rawMcp(resource, bearer(third.json.access_token))).status).toBe(200);

    // 10. Revocation (RFC 7009), which the metadata must advertise: revoking the refresh token ends the grant.
    const meta = await (await fetch(`${gateway.url}/.well-known/oauth-authorization-server`)).json();
    expect(meta.revocation_endpoint, "authorization-server metadata advertises revocation_endpoint").toBeTruthy();
    const revoked = await fetch(new URL(meta.revocation_endpoint, gateway.url), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        token: third.json.refresh_token,
        token_type_hint: "refresh_token",
        client_id: clientId,
      }),
    });
    expect(revoked.status).toBe(200);
    expect((await rawMcp(resource, bearer(third.json.access_token))).status).toBe(401);
    expect((await rawMcp(resource, bearer(tokens.access_token))).status).toBe(401);
    const afterRevocation = await refresh(third.json.refresh_token);
    expect(afterRevocation.status).toBe(400);
    expect(afterRevocation.json.error).toBe("invalid_grant");
  });
});

describe("tokens for CLIs and the owner's one studio", () => {
  it("/mcp-key with the owner token is the OAuth owner's studio, for SDK v1 and v2; mallory's token is someone else", async () => {
    const driver = driverFor();
    await driver.signIn(
      driver.authorizeUrl({ clientId: (await driver.register()).client_id, challenge: pkce().challenge }),
    );
    const oauth = await driver.accessToken();
    const viaOAuth = await connectV2(resource, bearer(oauth.access_token));
    try {
      const made = await viaOAuth.call("generate_image", { prompt: "a lighthouse", width: 64, height: 64, steps: 2 });
      expect(made.isError, text(made)).toBeFalsy();
      const assetId = made.structuredContent.asset_id;
      for (const connect of [connectV1, connectV2]) {
        const cli = await connect(keyUrl, bearer(OWNER_TOKEN));
        try {
          const meta = await cli.call("get_asset_metadata", { asset_id: assetId });
          expect(meta.isError, `${cli.era}: ${text(meta)}`).toBeFalsy();
          expect(meta.structuredContent.asset_id).toBe(assetId);
          expect((await fetch(meta.structuredContent.download_url)).status).toBe(200);
          const listed = (await cli.call("list_assets", { limit: 100 })).structuredContent.assets.map(
            (a) => a.asset_id,
          );
          expect(listed).toContain(assetId);
        } finally {
          await cli.close();
        }
      }
      const mallory = await connectV1(keyUrl, bearer(MALLORY_TOKEN));
      try {
        const theirs = await mallory.call("generate_image", { prompt: "a mallard", width: 64, height: 64, steps: 2 });
        expect(theirs.isError, text(theirs)).toBeFalsy();
        const ownerList = (await viaOAuth.call("list_assets", { limit: 100 })).structuredContent.assets.map(
          (a) => a.asset_id,
        );
        expect(ownerList).not.toContain(theirs.structuredContent.asset_id);
      } finally {
        await mallory.close();
      }
    } finally {
      await viaOAuth.close();
    }
  });
});

describe("security suite", () => {
  /** @type {{ attack: string, expected: string, got: string, refused: boolean }[]} */
  const rows = [];
  const record = (attack, expected, got, refused) => {
    rows.push({ attack, expected, got: String(got), refused: Boolean(refused) });
  };
  /** Asserts that every row recorded since `from` was refused (the table prints either way). */
  const allRefused = (from) =>
    expect(
      rows
        .slice(from)
        .filter((r) => !r.refused)
        .map((r) => `${r.attack}: expected ${r.expected}, got ${r.got}`),
      "attacks that were NOT refused",
    ).toEqual([]);

  let driver;
  let owner; // OAuth tokens (generate + publish)
  let ownerMcp; // SDK v2 on /mcp with the owner's OAuth token
  let mallory; // SDK v2 on /mcp-key with mallory's static token
  let asset; // a generate_image result of the owner's

  beforeAll(async () => {
    driver = driverFor();
    await driver.signIn(
      driver.authorizeUrl({ clientId: (await driver.register()).client_id, challenge: pkce().challenge }),
    );
    owner = await driver.accessToken();
    ownerMcp = await connectV2(resource, bearer(owner.access_token));
    mallory = await connectV2(keyUrl, bearer(MALLORY_TOKEN));
    const made = await ownerMcp.call("generate_image", {
      prompt: "the owner's harbour",
      width: 64,
      height: 48,
      steps: 2,
    });
    if (made.isError) throw new Error(`owner generate_image failed: ${text(made)}`);
    asset = made.structuredContent;
  });

  afterAll(async () => {
    console.log(
      `\n### Security suite: attacks tried and outcomes (${rows.filter((r) => r.refused).length}/${rows.length} refused)\n\n${markdownTable(rows)}\n`,
    );
    await ownerMcp?.close();
    await mallory?.close();
  });

  it("bearer tokens: none, garbage, unknown, tampered; foreign Origin and Host; /mcp-key never advertises OAuth", async () => {
    const from = rows.length;
    const challenge = (r) => r.headers.get("www-authenticate") ?? "";
    const oauthError = (r) => json(r.body)?.error ?? "not JSON";
    /** The provider's refusal of a bearer token on /mcp: 401, `invalid_token`, and the discovery challenge. */
    const invalidToken = (r) =>
      r.status === 401 && oauthError(r) === "invalid_token" && /resource_metadata/.test(challenge(r));
    const tokenGot = (r) => `${r.status} ${oauthError(r)}`;
    /** No bearer token at all: the bare discovery challenge (RFC 6750 §3.1: no error code), no body. */
    const bareChallenge = (r) =>
      r.status === 401 && /resource_metadata=/.test(challenge(r)) && !/error=/.test(challenge(r)) && r.body === "";
    let r = await rawMcp(resource);
    record(
      "no token on /mcp",
      "401 + WWW-Authenticate resource_metadata (no error code)",
      `${r.status} ${challenge(r).slice(0, 60)}`,
      bareChallenge(r),
    );
    r = await rawMcp(resource, bearer("not-a-token"));
    record("wrong token (garbage) on /mcp", "401 invalid_token", tokenGot(r), invalidToken(r));
    const parts = owner.access_token.split(":");
    expect(parts, "the provider's access tokens are user:grant:secret").toHaveLength(3);
    const unknown = `${parts[0]}:${parts[1]}:${randomToken(parts[2].length)}`;
    r = await rawMcp(resource, bearer(unknown));
    record(
      "expired/unknown token (valid shape, unknown secret; real expiry = provider accessTokenTTL)",
      "401 invalid_token",
      tokenGot(r),
      invalidToken(r),
    );
    r = await rawMcp(resource, bearer(`mallory:${parts[1]}:${parts[2]}`));
    record(
      "owner's access token with its user part rewritten to mallory",
      "401 invalid_token",
      tokenGot(r),
      invalidToken(r),
    );
    r = await rawMcp(resource, bearer(`${owner.access_token}x`));
    record("owner's access token with a byte appended", "401 invalid_token", tokenGot(r), invalidToken(r));
    r = await rawMcp(resource, { Authorization: `Basic ${Buffer.from(`owner:${PASSWORD}`).toString("base64")}` });
    record(
      "HTTP Basic with the owner password on /mcp",
      "401 + WWW-Authenticate resource_metadata (no bearer token)",
      `${r.status} ${challenge(r).slice(0, 60)}`,
      bareChallenge(r),
    );

    // /mcp-key: a JSON refusal naming MCP_TOKENS, never OAuth discovery. These guesses come from
    // their own address, so the token throttle does not touch the other tests' /mcp-key calls.
    const guesser = fromAddress("192.0.2.10");
    const keyRefusal = (res) =>
      res.status === 401 &&
      json(res.body)?.error === "unauthorized" &&
      /Bearer <one of the MCP_TOKENS>/.test(json(res.body)?.message) &&
      !/resource_metadata/.test(challenge(res));
    const keyGot = (res) =>
      `${res.status} ${json(res.body)?.error ?? "not JSON"}${/resource_metadata/.test(challenge(res)) ? " + resource_metadata!" : ""}`;
    const expectedKey = "401 unauthorized (JSON naming MCP_TOKENS), no OAuth discovery";
    r = await rawMcp(keyUrl, guesser);
    record("no token on /mcp-key", expectedKey, keyGot(r), keyRefusal(r));
    r = await rawMcp(keyUrl, { ...guesser, ...bearer("tok_owner_wrong_000000000000") });
    record("wrong token on /mcp-key", expectedKey, keyGot(r), keyRefusal(r));
    r = await rawMcp(keyUrl, { ...guesser, ...bearer(OWNER_TOKEN.slice(0, -1)) });
    record("owner token minus its last character on /mcp-key", expectedKey, keyGot(r), keyRefusal(r));
    r = await rawMcp(keyUrl, { ...guesser, ...bearer(unknown) });
    record("forged OAuth-shaped token on /mcp-key", expectedKey, keyGot(r), keyRefusal(r));
    r = await rawMcp(keyUrl, { ...guesser, ...bearer(`${GEN_TOKEN}:admin`) });
    record("scoped token with a scope suffix appended on /mcp-key", expectedKey, keyGot(r), keyRefusal(r));

    r = await rawMcp(resource, { ...bearer(owner.access_token), Origin: "https://evil.example" });
    const originRefusal = json(r.body)?.error?.message ?? r.body;
    record(
      "cross-site browser request: valid token + Origin https://evil.example",
      "403 'Forbidden: … not from Origin https://evil.example'",
      `${r.status} ${originRefusal.slice(0, 70)}`,
      r.status === 403 && /^Forbidden: .*not from Origin https:\/\/evil\.example\./.test(originRefusal),
    );
    const initialize = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1.0.0" } },
    });
    const mcpHeaders = {
      "Content-Type": "application/json",
      Accept: "application/json, text/event-stream",
      Host: "evil.example",
    };
    // On /mcp the provider refuses the token first (its audience is this origin's /mcp): 401
    // invalid_token. /mcp-key accepts the token, then the SDK's Host check refuses: 403.
    let rebound = await rawRequest(resource, {
      method: "POST",
      headers: { ...mcpHeaders, ...bearer(owner.access_token) },
      body: initialize,
    });
    record(
      "DNS rebinding: valid token + Host: evil.example on /mcp",
      "401 invalid_token",
      `${rebound.status} ${json(rebound.body)?.error ?? rebound.body.slice(0, 60)}`,
      rebound.status === 401 && json(rebound.body)?.error === "invalid_token",
    );
    rebound = await rawRequest(keyUrl, {
      method: "POST",
      headers: { ...mcpHeaders, ...bearer(OWNER_TOKEN) },
      body: initialize,
    });
    record(
      "DNS rebinding: valid token + Host: evil.example on /mcp-key",
      "403 Invalid Host",
      `${rebound.status} ${rebound.body.slice(0, 80)}`,
      rebound.status === 403 && /Invalid Host/i.test(rebound.body),
    );
    allRefused(from);
  });

  it("OAuth flow: audience, replayed code, PKCE, redirect URIs, consent CSRF, framing, XSS, login CSRF, scopes", async () => {
    const from = rows.length;

    /** The error page /authorize answers with: status, title, and where (if anywhere) it redirects. */
    const authorizeGot = (page) =>
      `/authorize ${page.status}${page.location ? ` → ${page.location}` : ""} ${/<h1>([^<]*)<\/h1>/.exec(page.body)?.[1] ?? ""}`;
    const invalidAuthorize = (flow, detail) =>
      flow.page.status === 400 &&
      !flow.page.location &&
      !flow.consent &&
      /<h1>Invalid authorization request<\/h1>/.test(flow.page.body) &&
      detail.test(flow.page.body);
    /** A code was issued, and exchanging it the attacker's way was refused with exactly this error. */
    const exchangeRefused = (flow, exchanged, error) =>
      Boolean(flow.code) && exchanged.status === 400 && exchanged.json.error === error;
    const exchangeGot = (flow, exchanged) =>
      `${flow.code ? "code issued" : `NO code (consent ${flow.consent?.status ?? "not shown"})`}; /oauth/token ${exchanged.status} ${exchanged.json.error ?? ""}`;

    // Token for another resource/audience.
    let flow = await driver.authorize({ resource: "http://evil.example/mcp" });
    record(
      "authorize for another resource (resource=http://evil.example/mcp)",
      "400 'Invalid authorization request' at /authorize, no consent",
      `${authorizeGot(flow.page)} ${/resource/i.test(flow.page.body) ? "(names the resource)" : ""}`,
      invalidAuthorize(flow, /resource/i),
    );
    flow = await driver.authorize();
    let exchanged = await driver.exchange(flow, { resource: "http://evil.example/mcp" });
    record(
      "code exchanged for another audience (resource=http://evil.example/mcp)",
      "code issued, then 400 invalid_target",
      exchangeGot(flow, exchanged),
      exchangeRefused(flow, exchanged, "invalid_target"),
    );

    // Replayed code.
    flow = await driver.authorize();
    const firstUse = await driver.exchange(flow);
    const replay = await driver.exchange(flow);
    record(
      "replayed authorization code (second exchange)",
      "first 200, replay 400 invalid_grant",
      `first ${firstUse.status}, replay ${replay.status} ${replay.json.error ?? ""}`,
      firstUse.status === 200 && exchangeRefused(flow, replay, "invalid_grant"),
    );

    // PKCE.
    flow = await driver.authorize();
    exchanged = await driver.exchange(flow, { code_verifier: pkce().verifier });
    record(
      "wrong PKCE verifier",
      "code issued, then 400 invalid_grant",
      exchangeGot(flow, exchanged),
      exchangeRefused(flow, exchanged, "invalid_grant"),
    );
    flow = await driver.authorize();
    exchanged = await driver.token({
      grant_type: "authorization_code",
      code: flow.code,
      redirect_uri: callback.redirectUri,
      client_id: flow.client.client_id,
      resource,
    });
    // A missing parameter is `invalid_request` (RFC 6749 §5.2); a wrong value is `invalid_grant`.
    record(
      "PKCE code exchanged without a verifier",
      "code issued, then 400 invalid_request",
      exchangeGot(flow, exchanged),
      exchangeRefused(flow, exchanged, "invalid_request"),
    );
    flow = await driver.authorize({ pkceMethod: null });
    record(
      "public client without PKCE (no code_challenge)",
      "400 'Invalid authorization request' naming PKCE, no consent",
      authorizeGot(flow.page),
      invalidAuthorize(flow, /PKCE|code_challenge/i),
    );
    flow = await driver.authorize({ pkceMethod: "plain" });
    record(
      "PKCE downgrade to code_challenge_method=plain",
      "400 'Invalid authorization request' naming S256, no consent",
      authorizeGot(flow.page),
      invalidAuthorize(flow, /S256|code_challenge_method|plain/i),
    );
    flow = await driver.authorize();
    exchanged = await driver.exchange(flow, { redirect_uri: `${callback.origin}/other` });
    record(
      "code exchanged with another redirect_uri",
      "code issued, then 400 invalid_grant",
      exchangeGot(flow, exchanged),
      exchangeRefused(flow, exchanged, "invalid_grant"),
    );
    flow = await driver.authorize();
    const otherClient = await driver.register();
    exchanged = await driver.exchange(flow, { client_id: otherClient.client_id });
    record(
      "code exchanged by another client_id",
      "code issued, then 400 invalid_grant",
      exchangeGot(flow, exchanged),
      exchangeRefused(flow, exchanged, "invalid_grant"),
    );

    // Open redirects.
    const evilRedirect = "https://evil.example/callback";
    flow = await driver.authorize({ redirectUri: evilRedirect });
    record(
      "open redirect: unregistered redirect_uri (signed in)",
      "400 'Invalid authorization request' naming redirect_uri, no redirect",
      authorizeGot(flow.page),
      invalidAuthorize(flow, /redirect/i),
    );
    const clientId = flow.client.client_id;
    /** A signed-out browser that has just opened /authorize: its driver and the login page. */
    const signedOutLogin = async () => {
      const fresh = driverFor();
      return { fresh, page: (await fresh.request(fresh.authorizeUrl({ clientId, challenge: pkce().challenge }))).body };
    };
    const signedOut = await driverFor().request(
      driver.authorizeUrl({ clientId, redirectUri: evilRedirect, challenge: pkce().challenge }),
    );
    record(
      "open redirect: unregistered redirect_uri (signed out)",
      "400 'Invalid authorization request', no redirect",
      authorizeGot(signedOut),
      invalidAuthorize({ page: signedOut }, /redirect/i),
    );
    for (const next of ["https://evil.example/steal", "//evil.example/steal", "/\\evil.example/steal"]) {
      const { fresh, page } = await signedOutLogin();
      const answer = await fresh.login(page, PASSWORD, { next });
      record(
        `open redirect: login with next=${next}`,
        "303 to / on the gateway (signed in, not sent away)",
        `${answer.status}${answer.location ? ` → ${answer.location}` : ""}`,
        answer.status === 303 && answer.location === "/" && fresh.jar.has("__Host-owner-session"),
      );
    }

    // CSRF on consent: the provider's binding cookie and handle; our page says so, no code.
    const consentRefused = (flow) =>
      flow.consent?.status === 403 &&
      !flow.consent.location &&
      /<h1>This approval is not valid<\/h1>/.test(flow.consent.body) &&
      !flow.code;
    const consentGot = (flow) =>
      `${flow.consent?.status ?? `no consent page (${flow.page.status})`} ${/<h1>([^<]*)<\/h1>/.exec(flow.consent?.body ?? "")?.[1] ?? ""}${flow.code ? " + code!" : ""}`;
    const isBinding = (name) => name.startsWith("__Host-oauth-consent");
    flow = await driver.authorize({ consentCookie: (jar) => jar.headerWithout(isBinding) });
    record(
      "CSRF on consent: POST /authorize/consent without the binding cookie",
      "403 'This approval is not valid', no code",
      `${consentGot(flow)} (binding cookie seen: ${driver.jar.names().some(isBinding)})`,
      consentRefused(flow) && driver.jar.names().some(isBinding),
    );
    flow = await driver.authorize({ consentCookie: () => "" });
    // No cookies at all: no owner session either, so our own check answers first.
    record(
      "CSRF on consent: cross-site POST with no cookies at all",
      "403 'Not signed in', no code",
      consentGot(flow),
      flow.consent?.status === 403 && /<h1>Not signed in<\/h1>/.test(flow.consent.body) && !flow.code,
    );
    flow = await driver.authorize({ consentFields: { handle: randomToken(43) } });
    record(
      "CSRF on consent: forged handle (with the session cookies)",
      "403 'This approval is not valid', no code",
      consentGot(flow),
      consentRefused(flow),
    );

    // A consent with every box unticked grants nothing (finding 3): no code, and no grant listed.
    flow = await driver.authorize({ approve: [] });
    const listed = (await driver.grants()).grants.map((g) => g.clientId);
    record(
      "consent approved with no scope ticked",
      "400 'Nothing was allowed', no code, no grant",
      `${flow.consent?.status} ${/<h1>([^<]*)<\/h1>/.exec(flow.consent?.body ?? "")?.[1] ?? ""}${flow.code ? " + code!" : ""}${listed.includes(flow.client.client_id) ? " + grant listed!" : ""}`,
      flow.consent?.status === 400 &&
        /<h1>Nothing was allowed<\/h1>/.test(flow.consent.body) &&
        /No permission was ticked/.test(flow.consent.body) &&
        !flow.consent.location &&
        !flow.code &&
        !listed.includes(flow.client.client_id),
    );

    // Framing and markup injection.
    const consentPage = await driver.request(
      driver.authorizeUrl({ clientId: (await driver.register()).client_id, challenge: pkce().challenge }),
    );
    // Browsers enforce every CSP header, and read X-Frame-Options as the set of its comma-separated
    // values (HTML § "check a navigation response's adherence to X-Frame-Options"): {deny} blocks framing.
    const framing = (res) => {
      const xfo = new Set(
        (res.headers.get("x-frame-options") ?? "")
          .split(",")
          .map((v) => v.trim().toLowerCase())
          .filter(Boolean),
      );
      return (
        /frame-ancestors 'none'/.test(res.headers.get("content-security-policy") ?? "") &&
        xfo.size === 1 &&
        xfo.has("deny")
      );
    };
    const framingGot = (res) =>
      `${res.status} CSP=${res.headers.get("content-security-policy") ?? "none"}; XFO=${res.headers.get("x-frame-options") ?? "none"}`;
    record(
      "clickjacking: framing the consent page",
      "CSP frame-ancestors 'none' + X-Frame-Options DENY",
      framingGot(consentPage),
      consentPage.status === 200 && /\/authorize\/consent/.test(consentPage.body) && framing(consentPage),
    );
    const signedOutPage = await driverFor().request(
      driver.authorizeUrl({ clientId: (await driver.register()).client_id, challenge: pkce().challenge }),
    );
    record(
      "clickjacking: framing the login page",
      "CSP frame-ancestors 'none' + X-Frame-Options DENY",
      framingGot(signedOutPage),
      signedOutPage.status === 200 && /action="\/login"/.test(signedOutPage.body) && framing(signedOutPage),
    );
    const xssClient = await driver.register({ client_name: `<script>alert(1)</script><img src=x onerror=alert(2)>` });
    const xss = await driver.request(
      driver.authorizeUrl({ clientId: xssClient.client_id, challenge: pkce().challenge }),
    );
    const injected = /<script>alert\(1\)|<img src=x/i.test(xss.body);
    record(
      "XSS: client_name with <script>/<img onerror> on the consent page",
      "escaped text",
      `${xss.status}${injected ? " raw markup in page!" : " escaped"}`,
      xss.status === 200 && /handle/.test(xss.body) && !injected,
    );

    // CSRF on login (right password, so an accepted attempt would show as a 303).
    const formExpired = (answer) => answer.status === 403 && /<h1>Form expired<\/h1>/.test(answer.body);
    let login = await signedOutLogin();
    const fields = hiddenFields(login.page, "/login");
    let answer = await login.fresh.post("/login", { next: fields.next ?? "/", password: PASSWORD });
    record("CSRF on login: no csrf field (right password)", "403 'Form expired'", answer.status, formExpired(answer));
    login = await signedOutLogin();
    answer = await login.fresh.post("/login", {
      ...hiddenFields(login.page, "/login"),
      csrf: randomToken(43),
      password: PASSWORD,
    });
    record(
      "CSRF on login: forged csrf value (right password)",
      "403 'Form expired'",
      answer.status,
      formExpired(answer),
    );

    // Scopes: a token granted only `generate`.
    const narrow = await driver.accessToken({ scopes: ["generate", "publish"], approve: ["generate"] });
    const narrowMcp = await connectV2(resource, bearer(narrow.access_token));
    try {
      const made = await narrowMcp.call("generate_image", { prompt: "narrow", width: 64, height: 64, steps: 2 });
      const published = await narrowMcp.call("publish_asset", {
        asset_id: made.structuredContent?.asset_id ?? asset.asset_id,
        target_filename: "narrow.png",
      });
      record(
        "scope escalation: generate-only token calls publish_asset",
        "isError: not granted the 'publish' scope",
        `granted '${narrow.scope}'; generate_image ${made.isError ? "error" : "ok"}; publish_asset ${published.isError ? "error" : "ok"}: ${text(published).slice(0, 80)}`,
        narrow.scope === "generate" &&
          !made.isError &&
          published.isError === true &&
          /not granted the 'publish' scope/.test(text(published)),
      );
    } finally {
      await narrowMcp.close();
    }
    allRefused(from);
  });

  it("cross-user: mallory cannot reach the owner's assets, jobs, resources or downloads", async () => {
    const from = rows.length;
    const noAsset = new RegExp(`^No asset '${asset.asset_id}' in your studio`);
    const noJob = new RegExp(`^No job '${asset.job_id}' in your studio`);
    const refusedWith = (result, pattern) => result.isError === true && pattern.test(text(result));
    let result = await mallory.call("get_asset_metadata", { asset_id: asset.asset_id });
    record(
      "cross-user get_asset_metadata (mallory → owner's asset_id)",
      "isError: No asset '<id>' in your studio",
      text(result).slice(0, 70),
      refusedWith(result, noAsset),
    );
    result = await mallory.call("get_job", { prompt_id: asset.job_id });
    record(
      "cross-user get_job (mallory → owner's job id)",
      "isError: No job '<id>' in your studio",
      text(result).slice(0, 70),
      refusedWith(result, noJob),
    );
    result = await mallory.call("cancel_job", { prompt_id: asset.job_id });
    record(
      "cross-user cancel_job (mallory → owner's job id)",
      "isError: No job '<id>' in your studio",
      text(result).slice(0, 70),
      refusedWith(result, noJob),
    );
    result = await mallory.call("view_image", { asset_id: asset.asset_id });
    record(
      "cross-user view_image (mallory → owner's asset_id)",
      "isError: No asset '<id>' in your studio",
      text(result).slice(0, 70),
      refusedWith(result, noAsset),
    );
    result = await mallory.call("image_to_image", { image: asset.asset_id, prompt: "stolen", steps: 2 });
    record(
      "cross-user image_to_image input (mallory uses owner's asset_id)",
      "isError: 'image': no asset '<id>' in your studio",
      text(result).slice(0, 70),
      refusedWith(result, new RegExp(`^'image': no asset '${asset.asset_id}' in your studio`)),
    );
    let read;
    try {
      read = `answered: ${JSON.stringify(await mallory.readResource(`comfy://assets/${asset.asset_id}`)).slice(0, 60)}`;
    } catch (error) {
      read = `error: ${error.message}`;
    }
    record(
      "cross-user resources/read comfy://assets/<owner's id>",
      "error: No asset '<id>' in your studio",
      read.slice(0, 90),
      new RegExp(`^error: .*No asset '${asset.asset_id}' in your studio`).test(read),
    );
    const listed =
      (await mallory.call("list_assets", { limit: 100 })).structuredContent?.assets?.map((a) => a.asset_id) ?? [];
    record(
      "cross-user list_assets (mallory's listing)",
      "owner's asset absent",
      listed.includes(asset.asset_id) ? "owner's asset listed!" : `${listed.length} assets, owner's absent`,
      !listed.includes(asset.asset_id),
    );
    const resources = (await mallory.listResources()).resources.map((r) => r.uri);
    record(
      "cross-user resources/list",
      "owner's resource absent",
      resources.includes(`comfy://assets/${asset.asset_id}`)
        ? "listed!"
        : `${resources.length} resources, owner's absent`,
      !resources.includes(`comfy://assets/${asset.asset_id}`),
    );
    const ownUrl = new URL(asset.asset_url);
    expect((await fetch(ownUrl)).status).toBe(200);
    const forbidden = async (res) => res.status === 403 && (await res.json().catch(() => ({}))).error === "forbidden";
    for (const u of ["mallory", "local"]) {
      const forged = new URL(ownUrl);
      forged.searchParams.set("u", u);
      const res = await fetch(forged);
      record(`download: owner's signed URL with u=${u}`, "403 forbidden", res.status, await forbidden(res));
    }
    const unsigned = await fetch(`${gateway.url}/assets/${asset.asset_id}`);
    record("download: owner's asset without a signature", "403 forbidden", unsigned.status, await forbidden(unsigned));
    allRefused(from);
  });

  it("traversal names, oversize bodies and SSRF URLs", async () => {
    const from = rows.length;
    const code = (result) => /"error_code": "([A-Z_]+)"/.exec(text(result))?.[1] ?? text(result).slice(0, 60);
    for (const target of ["../x.png", "/etc/x.png", "a/../../x.png", "x\u0000.png", "x\n.png"]) {
      const result = await ownerMcp.call("publish_asset", { asset_id: asset.asset_id, target_filename: target });
      record(
        `traversal: publish_asset target_filename ${JSON.stringify(target)}`,
        "isError INVALID_TARGET_FILENAME",
        code(result),
        result.isError === true && code(result) === "INVALID_TARGET_FILENAME",
      );
    }
    let result = await ownerMcp.call("publish_asset", { asset_id: asset.asset_id, manifest_key: "../../x" });
    record(
      'traversal: publish_asset manifest_key "../../x"',
      "isError INVALID_MANIFEST_KEY",
      code(result),
      result.isError === true && code(result) === "INVALID_MANIFEST_KEY",
    );
    for (const name of ["../../etc/passwd", "gen/../../etc/passwd", "/etc/passwd"]) {
      result = await ownerMcp.call("unpublish", { filename: name });
      record(
        `traversal: unpublish ${JSON.stringify(name)}`,
        "isError INVALID_TARGET_FILENAME",
        code(result),
        result.isError === true && code(result) === "INVALID_TARGET_FILENAME",
      );
    }
    for (const path of [
      "/published/../x",
      "/published/../wrangler.toml",
      "/published/gen/..%2f..%2fwrangler.toml",
      "/published/%2e%2e/%2e%2e/package.json",
    ]) {
      const res = await rawRequest(`${gateway.url}${path}`);
      record(
        `traversal: GET ${path}`,
        "404 not_found, nothing served",
        `${res.status} ${json(res.body)?.error ?? res.body.slice(0, 40)}`,
        res.status === 404 && json(res.body)?.error === "not_found",
      );
    }

    const FIVE_MB = 5 * 1024 * 1024;
    const bigBody = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name: "get_defaults", arguments: { pad: "x".repeat(FIVE_MB) } },
    });
    const big = await bodyStatus(resource, bearer(owner.access_token), bigBody);
    record("oversize: 5 MB JSON POST /mcp (Content-Length)", "413", big, big === 413);
    const chunked = await bodyStatus(resource, bearer(owner.access_token), chunkedBody(FIVE_MB));
    record("oversize: 5 MB JSON POST /mcp chunked (no Content-Length)", "413", chunked, chunked === 413);
    const bigKey = await bodyStatus(keyUrl, bearer(OWNER_TOKEN), bigBody);
    record("oversize: 5 MB JSON POST /mcp-key", "413", bigKey, bigKey === 413);
    const bigRegistration = await bodyStatus(
      `${gateway.url}/oauth/register`,
      {},
      JSON.stringify({ redirect_uris: [callback.redirectUri], client_name: "x".repeat(2 * 1024 * 1024) }),
    );
    record("oversize: 2 MB client registration", "413", bigRegistration, bigRegistration === 413);

    const ssrf = [
      "https://127.0.0.1/x.png",
      "https://169.254.169.254/latest",
      "https://[::1]/x",
      "https://localhost/x.png",
      "https://10.0.0.1/x.png",
      "https://2130706433/x.png",
      "http://example.com/x.png",
      "https://[::ffff:127.0.0.1]/x.png",
      "https://localhost./x.png",
    ];
    // The refusal is matched positively (as workflows.test.mjs does): an error saying the fetched
    // file "is not a PNG" would mean the fetch happened.
    for (const url of ssrf) {
      result = await ownerMcp.call("image_to_image", { image: url, prompt: "ssrf", steps: 2 });
      const refusal = url.startsWith("http:")
        ? /^'image': only https URLs are accepted/
        : /^'image': .* is a private or local address; the gateway only fetches public https URLs/;
      record(
        `SSRF: image_to_image image=${url}`,
        `isError ${url.startsWith("http:") ? "'only https URLs'" : "'private or local address'"}, before any fetch`,
        text(result).slice(0, 90),
        result.isError === true && refusal.test(text(result)),
      );
    }
    allRefused(from);
  });

  it("fails closed: no OWNER_PASSWORD/MCP_TOKENS and ALLOW_UNAUTHENTICATED_LOCAL=false → 503 naming both", async () => {
    const from = rows.length;
    const bare = await startGateway({ comfyUrl: fake.url, vars: { ALLOW_UNAUTHENTICATED_LOCAL: "false" } });
    try {
      const r = await rawMcp(bare.mcpUrl);
      const message = JSON.stringify(json(r.body) ?? r.body);
      record(
        "MCP on a gateway with no auth configured",
        "503 naming OWNER_PASSWORD and MCP_TOKENS",
        `${r.status} ${message.slice(0, 80)}`,
        r.status === 503 && /OWNER_PASSWORD/.test(message) && /MCP_TOKENS/.test(message),
      );
      const k = await rawMcp(`${bare.url}/mcp-key`, bearer(OWNER_TOKEN));
      record(
        "/mcp-key on a gateway with no tokens configured",
        "503 unauthorized 'No MCP_TOKENS are configured'",
        `${k.status} ${json(k.body)?.error ?? k.body.slice(0, 40)}`,
        k.status === 503 &&
          json(k.body)?.error === "unauthorized" &&
          /No MCP_TOKENS are configured/.test(json(k.body)?.message),
      );
    } finally {
      await bare.stop();
    }
    allRefused(from);
  });

  /** A signed-out browser at the login page (a fresh form and CSRF cookie), and a login from `address`. */
  const loginFrom = async (address) => {
    const browser = driverFor();
    const clientId = (await browser.register()).client_id;
    const loginPage = async () =>
      (await browser.request(browser.authorizeUrl({ clientId, challenge: pkce().challenge }))).body;
    const page = await loginPage();
    return {
      browser,
      loginPage,
      /** Posts `page`'s form with `password` from `address` (or `other`). */
      login: (password, form = page, other = address) =>
        browser.login(form, password, {}, { headers: fromAddress(other) }),
    };
  };
  const tooMany = (answer) =>
    answer.status === 429 &&
    /^\d+$/.test(answer.headers.get("retry-after") ?? "") &&
    Number(answer.headers.get("retry-after")) >= 1 &&
    /<h1>Too many attempts<\/h1>/.test(answer.body);
  const wrongPassword = (answer) => answer.status === 401 && /Wrong password\. \d attempts? left/.test(answer.body);
  /** "5×401, 45×429": how many answers had each status. */
  const tally = (answers) => {
    const counts = new Map();
    for (const answer of answers) counts.set(answer.status, (counts.get(answer.status) ?? 0) + 1);
    return [...counts].map(([status, n]) => `${n}×${status}`).join(", ");
  };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  it("sign-in throttling: sequential and 50 parallel wrong passwords from one address, rotation in an IPv6 /64", async () => {
    const from = rows.length;

    // Sequential guesses: 5 are evaluated (each says how many are left), the 6th is refused.
    const sequential = await loginFrom("203.0.113.6");
    let page = await sequential.loginPage();
    const statuses = [];
    let limited;
    for (let attempt = 0; attempt < 7 && !limited; attempt++) {
      const answer = await sequential.login(`guess-${attempt}`, page);
      statuses.push(answer.status === 401 && !wrongPassword(answer) ? "401 (no 'Wrong password')" : answer.status);
      if (answer.status === 429) limited = { at: attempt + 1, answer };
      else page = answer.body; // the 401 page carries a fresh form
    }
    record(
      "brute-force login (sequential wrong passwords from one address)",
      "5× 401 'Wrong password. N left', then 429 'Too many attempts' + Retry-After",
      `${statuses.join(",")}${limited ? ` (429 at attempt #${limited.at})` : " (never limited)"}`,
      statuses.slice(0, 5).every((s) => s === 401) && limited?.at === 6 && tooMany(limited.answer),
    );

    // 50 in parallel from one address (finding 2): at most 5 evaluated, the rest 429 with Retry-After.
    const burst = await loginFrom("198.51.100.50");
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => burst.login(`parallel-guess-${i}`)));
    const evaluated = answers.filter(wrongPassword).length;
    record(
      "50 parallel wrong passwords from one address",
      "at most 5 evaluated (401), the other 45+ 429 'Too many attempts' + Retry-After",
      tally(answers),
      evaluated <= 5 && answers.filter(tooMany).length === 50 - evaluated,
    );
    const right = await burst.login(PASSWORD, await burst.loginPage());
    record(
      "right password right after the parallel burst, same address",
      "429 'Too many attempts', no session",
      `${right.status}${right.location ? ` → ${right.location}` : ""}`,
      tooMany(right) && !burst.browser.jar.has("__Host-owner-session"),
    );
    const retryAfter = Number(right.headers.get("retry-after"));
    const retryAt = Date.now() + retryAfter * 1000;

    // Rotating addresses inside one IPv6 /64: 10 evaluated in all, then the whole /64 is refused.
    const rotation = await loginFrom("2001:db8:64:1::1");
    const rotated = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        rotation.login(`rotating-${i}`, undefined, `2001:db8:64:1::${(i + 1).toString(16)}`),
      ),
    );
    record(
      "12 wrong passwords from 12 addresses of one IPv6 /64",
      "10 evaluated (401), then 429 'from your network'",
      tally(rotated),
      rotated.filter(wrongPassword).length === 10 &&
        rotated.filter((a) => tooMany(a) && /from your network/.test(a.body)).length === 2,
    );
    const sameNetwork = await rotation.login(PASSWORD, await rotation.loginPage(), "2001:db8:64:1::99");
    record(
      "right password from a fresh address in that /64",
      "429 'Too many attempts', no session",
      sameNetwork.status,
      tooMany(sameNetwork) && !rotation.browser.jar.has("__Host-owner-session"),
    );
    const otherNetwork = await rotation.login(PASSWORD, await rotation.loginPage(), "2001:db8:64:2::1");
    expect(otherNetwork.status, "another /64 is not affected").toBe(303);
    allRefused(from);

    // Once Retry-After has passed (the window is AUTH_WINDOW_SECONDS here), the right password works.
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(AUTH_WINDOW_SECONDS);
    await sleep(retryAt - Date.now() + 500);
    const later = await burst.login(PASSWORD, await burst.loginPage());
    expect(later.status, later.body.slice(0, 300)).toBe(303);
    expect(burst.browser.jar.has("__Host-owner-session")).toBe(true);
  });

  it("token throttling on /mcp-key: 20 parallel wrong tokens from one address, then the right token is refused there", async () => {
    const from = rows.length;
    const attacker = fromAddress("192.0.2.77");
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        rawMcp(keyUrl, { ...attacker, ...bearer(`tok_guess_${i}_1234567890abcdef`) }),
      ),
    );
    const throttled = (r) =>
      r.status === 429 &&
      Number(r.headers.get("retry-after")) >= 1 &&
      json(r.body)?.error === "too_many_attempts" &&
      /Too many wrong tokens from your address/.test(json(r.body)?.message);
    const evaluated = answers.filter((r) => r.status === 401 && json(r.body)?.error === "unauthorized").length;
    record(
      "20 parallel wrong tokens on /mcp-key from one address",
      "at most 5 evaluated (401), the rest 429 too_many_attempts + Retry-After",
      tally(answers),
      evaluated <= 5 && answers.filter(throttled).length === 20 - evaluated,
    );
    const right = await rawMcp(keyUrl, { ...attacker, ...bearer(OWNER_TOKEN) });
    record(
      "right token from the throttled address",
      "429 too_many_attempts",
      `${right.status} ${json(right.body)?.error ?? ""}`,
      throttled(right),
    );
    const elsewhere = await rawMcp(keyUrl, { ...fromAddress("192.0.2.78"), ...bearer(OWNER_TOKEN) });
    expect(elsewhere.status, "another address is not affected").toBe(200);
    allRefused(from);
  });

  it("per-token scopes: a `gen:token:generate` token reads and generates, but publish_asset and set_defaults are refused (SDK v1 and v2)", async () => {
    const from = rows.length;
    for (const connect of [connectV1, connectV2]) {
      const gen = await connect(keyUrl, bearer(GEN_TOKEN));
      try {
        const defaults = await gen.call("get_defaults");
        expect(defaults.isError, `${gen.era}: ${text(defaults)}`).toBeFalsy();
        const published = await gen.call("publish_asset", { asset_id: asset.asset_id, target_filename: "gen.png" });
        record(
          `generate-only static token (${gen.era}) calls publish_asset`,
          "isError: not granted the 'publish' scope (MCP_TOKENS named)",
          text(published).slice(0, 90),
          published.isError === true &&
            /not granted the 'publish' scope/.test(text(published)) &&
            /MCP_TOKENS/.test(text(published)),
        );
        const defaultsSet = await gen.call("set_defaults", { image: { steps: 3 } });
        record(
          `generate-only static token (${gen.era}) calls set_defaults`,
          "isError: not granted the 'admin' scope",
          text(defaultsSet).slice(0, 90),
          defaultsSet.isError === true && /not granted the 'admin' scope/.test(text(defaultsSet)),
        );
      } finally {
        await gen.close();
      }
    }
    allRefused(from);
  });

  it("sessions: the owner revokes one application's grant at /grants; sign-out ends the session (both need the CSRF token)", async () => {
    const from = rows.length;
    const owner2 = driverFor();
    await owner2.signIn(
      owner2.authorizeUrl({ clientId: (await owner2.register()).client_id, challenge: pkce().challenge }),
    );
    const first = await owner2.accessToken();
    const second = await owner2.accessToken();
    const listing = await owner2.grants();
    expect(listing.status).toBe(200);
    const ids = listing.grants.map((g) => g.clientId);
    expect(ids).toEqual(expect.arrayContaining([first.client.client_id, second.client.client_id]));
    const target = listing.grants.find((g) => g.clientId === first.client.client_id);
    expect(target.fields.grant).toBeTruthy();

    // A revocation without the page's CSRF token (a cross-site form) changes nothing.
    const forgedRevoke = await owner2.post("/grants/revoke", { grant: target.fields.grant, csrf: randomToken(64) });
    const stillWorks = (await rawMcp(resource, bearer(first.access_token))).status;
    record(
      "CSRF on grant revocation: POST /grants/revoke with a forged csrf",
      "403 'Form expired', the grant stays",
      `${forgedRevoke.status}; the application's token then answers ${stillWorks}`,
      forgedRevoke.status === 403 && /<h1>Form expired<\/h1>/.test(forgedRevoke.body) && stillWorks === 200,
    );
    // The owner's revocation: 303 back to /grants, that client's token is refused, the other works.
    const revoked = await owner2.post("/grants/revoke", target.fields);
    expect(revoked.status).toBe(303);
    expect(revoked.location).toBe("/grants");
    const afterRevoke = await rawMcp(resource, bearer(first.access_token));
    record(
      "access token of a grant the owner revoked at /grants",
      "401 invalid_token",
      `${afterRevoke.status} ${json(afterRevoke.body)?.error ?? ""}`,
      afterRevoke.status === 401 && json(afterRevoke.body)?.error === "invalid_token",
    );
    const refreshed = await owner2.token({
      grant_type: "refresh_token",
      refresh_token: first.refresh_token,
      client_id: first.client.client_id,
    });
    record(
      "refresh token of a grant the owner revoked",
      "400 invalid_grant",
      `${refreshed.status} ${refreshed.json.error ?? ""}`,
      refreshed.status === 400 && refreshed.json.error === "invalid_grant",
    );
    expect((await rawMcp(resource, bearer(second.access_token))).status, "the other application keeps access").toBe(
      200,
    );
    expect((await owner2.grants()).grants.map((g) => g.clientId)).not.toContain(first.client.client_id);

    // Sign-out: a forged form is refused and the session stays; the real one ends it for good.
    const cookie = `__Host-owner-session=${owner2.jar.cookies.get("__Host-owner-session")}`;
    const forgedOut = await owner2.post("/logout", { csrf: randomToken(64) });
    const afterForged = await owner2.grants();
    record(
      "CSRF on sign-out: POST /logout with a forged csrf",
      "403 'Form expired', still signed in",
      `${forgedOut.status}; /grants then shows ${afterForged.grants.length ? "the grants" : "something else"}`,
      forgedOut.status === 403 &&
        /<h1>Form expired<\/h1>/.test(forgedOut.body) &&
        /action="\/logout"/.test(afterForged.body),
    );
    const out = await owner2.post("/logout", afterForged.signOut);
    expect(out.status).toBe(200);
    expect(out.body).toMatch(/<h1>Signed out<\/h1>/);
    expect(owner2.jar.has("__Host-owner-session"), "the cookie is cleared").toBe(false);
    const replayed = await owner2.request("/grants", { cookie });
    const replayedConsent = await owner2.request(
      owner2.authorizeUrl({ clientId: second.client.client_id, challenge: pkce().challenge }),
      { cookie },
    );
    record(
      "signed-out session cookie replayed (GET /grants, /authorize)",
      "the login page, no grants, no consent",
      `/grants ${replayed.status} ${/action="\/login"/.test(replayed.body) ? "login page" : "NOT the login page"}; /authorize ${/action="\/login"/.test(replayedConsent.body) ? "login page" : "NOT the login page"}`,
      replayed.status === 200 &&
        /action="\/login"/.test(replayed.body) &&
        !/action="\/grants\/revoke"/.test(replayed.body) &&
        /action="\/login"/.test(replayedConsent.body) &&
        !/\/authorize\/consent/.test(replayedConsent.body),
    );
    allRefused(from);
  });

  it("a password change ends existing sessions (same state directory, gateway restarted)", async () => {
    const from = rows.length;
    const persistDir = mkdtempSync(join(tmpdir(), "comfyui-mcp-edge-password-"));
    const start = (password) =>
      startGateway({ comfyUrl: fake.url, persistDir, vars: { ...VARS, OWNER_PASSWORD: password } });
    /** What /authorize shows a browser holding `jar`: the consent form when signed in, else the login form. */
    const authorizeAs = async (gw, jar, clientId) => {
      const browser = new OAuthDriver(gw.url, { password: PASSWORD, redirectUri: callback.redirectUri });
      browser.jar = jar;
      const page = await browser.request(browser.authorizeUrl({ clientId, challenge: pkce().challenge }));
      return {
        ...page,
        shows: /\/authorize\/consent/.test(page.body)
          ? "consent"
          : /action="\/login"/.test(page.body)
            ? "login"
            : `HTTP ${page.status}`,
      };
    };
    try {
      let gw = await start(PASSWORD);
      const browser = new OAuthDriver(gw.url, { password: PASSWORD, redirectUri: callback.redirectUri });
      const clientId = (await browser.register()).client_id;
      await browser.signIn(browser.authorizeUrl({ clientId, challenge: pkce().challenge }));
      await gw.stop();
      // Control: restarted with the same password, the session is still good.
      gw = await start(PASSWORD);
      expect((await authorizeAs(gw, browser.jar.clone(), clientId)).shows, "a restart alone keeps the session").toBe(
        "consent",
      );
      await gw.stop();
      gw = await start("a brand new passphrase");
      try {
        const changed = await authorizeAs(gw, browser.jar.clone(), clientId);
        record(
          "session cookie from before a password change (GET /authorize)",
          "the login page (session ended), no consent",
          `${changed.status} ${changed.shows}`,
          changed.status === 200 && changed.shows === "login",
        );
        const driver = new OAuthDriver(gw.url, { password: PASSWORD, redirectUri: callback.redirectUri });
        const fresh = await driver.request(driver.authorizeUrl({ clientId, challenge: pkce().challenge }));
        const oldPassword = await driver.login(fresh.body, PASSWORD);
        expect(oldPassword.status, "the old password no longer signs in").toBe(401);
        const newPassword = await driver.login(oldPassword.body, "a brand new passphrase");
        expect(newPassword.status).toBe(303);
        expect(newPassword.location).toMatch(/^\/authorize\?/);
      } finally {
        await gw.stop();
      }
    } finally {
      rmSync(persistDir, { recursive: true, force: true });
    }
    allRefused(from);
  });
});

/**
 * A request with the path and headers exactly as written: fetch would normalise dot segments away
 * and does not let a caller choose the Host header.
 */
function rawRequest(url, { method = "GET", headers = {}, body } = {}) {
  const { hostname, port } = new URL(url);
  const path = url.slice(url.indexOf("/", url.indexOf("//") + 2));
  return new Promise((resolve, reject) => {
    const request = http.request({ host: hostname, port, path, method, headers }, (response) => {
      let text = "";
      response.on("data", (chunk) => (text += chunk));
      response.on("end", () => resolve({ status: response.statusCode, body: text }));
    });
    request.on("error", reject);
    request.end(body);
  });
}

/** POSTs a large body; the status, or what happened to the connection. */
async function bodyStatus(url, headers, body) {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream", ...headers },
      body,
      duplex: "half",
    });
    await response.body?.cancel();
    return response.status;
  } catch (error) {
    return `connection error: ${error.cause?.code ?? error.message}`;
  }
}

/** A JSON-RPC tools/call of about `size` bytes as a stream (sent chunked, no Content-Length). */
function chunkedBody(size) {
  const encoder = new TextEncoder();
  const head = encoder.encode(
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_defaults","arguments":{"pad":"',
  );
  const tail = encoder.encode('"}}}');
  const chunk = encoder.encode("x".repeat(64 * 1024));
  let sent = -1;
  return new ReadableStream({
    pull(controller) {
      if (sent < 0) {
        controller.enqueue(head);
        sent = 0;
      } else if (sent < size) {
        controller.enqueue(chunk);
        sent += chunk.length;
      } else {
        controller.enqueue(tail);
        controller.close();
      }
    },
  });
}
