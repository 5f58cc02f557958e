// Safe on the open internet, end to end over wrangler dev: OAuth discovery, the authorization-code
// + PKCE flow driven in a real headless Chromium (login, consent, code, tokens, SDK v1 and v2
// clients, refresh rotation, revocation), static tokens for CLIs on /mcp-key, and a security suite
// that tries each attack, prints the table of outcomes and requires every row to be refused.
import { randomBytes } from "node:crypto";
import http from "node:http";
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
const VARS = {
  OWNER_PASSWORD: PASSWORD,
  MCP_TOKENS: `owner:${OWNER_TOKEN},mallory:${MALLORY_TOKEN}`,
  DOWNLOAD_SIGNING_KEY: "k",
  COMFY_MCP_WAIT_SECONDS: "30",
};

let fake;
let gateway;
let callback;
let resource;
let keyUrl;
/** Every wrong-password POST /login this file sends: the login rate limiter counts them. */
let wrongPasswordPosts = 0;

const bearer = (token) => ({ Authorization: `Bearer ${token}` });
const text = (result) => result?.content?.find((c) => c.type === "text")?.text ?? "";
const randomToken = (length) => randomBytes(length).toString("base64url").slice(0, length);
const sameOrigin = (location) => !location || new URL(location, gateway.url).origin === gateway.url;
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
      wrongPasswordPosts++;
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

    // 10. Revocation (RFC 7009) where the metadata advertises it: revoking the refresh token ends the grant.
    const meta = await (await fetch(`${gateway.url}/.well-known/oauth-authorization-server`)).json();
    if (!meta.revocation_endpoint) {
      console.warn("authorization-server metadata advertises no revocation_endpoint: revocation not tested");
      return;
    }
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
    expect((await refresh(third.json.refresh_token)).status).toBe(400);
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
    let r = await rawMcp(resource);
    record(
      "no token on /mcp",
      "401 + WWW-Authenticate resource_metadata",
      `${r.status} ${challenge(r).slice(0, 60)}`,
      r.status === 401 && /resource_metadata/.test(challenge(r)),
    );
    r = await rawMcp(resource, bearer("not-a-token"));
    record("wrong token (garbage) on /mcp", "401", r.status, r.status === 401);
    const parts = owner.access_token.split(":");
    const unknown =
      parts.length === 3
        ? `${parts[0]}:${parts[1]}:${randomToken(parts[2].length)}`
        : randomToken(owner.access_token.length);
    r = await rawMcp(resource, bearer(unknown));
    record(
      "expired/unknown token (valid shape, unknown secret; real expiry = provider accessTokenTTL)",
      "401",
      r.status,
      r.status === 401,
    );
    if (parts.length === 3) {
      r = await rawMcp(resource, bearer(`mallory:${parts[1]}:${parts[2]}`));
      record("owner's access token with its user part rewritten to mallory", "401", r.status, r.status === 401);
    }
    r = await rawMcp(resource, bearer(`${owner.access_token}x`));
    record("owner's access token with a byte appended", "401", r.status, r.status === 401);
    r = await rawMcp(resource, { Authorization: `Basic ${Buffer.from(`owner:${PASSWORD}`).toString("base64")}` });
    record("HTTP Basic with the owner password on /mcp", "401", r.status, r.status === 401);

    const keyRefusal = (res) =>
      res.status === 401 && json(res.body) !== undefined && !/resource_metadata/.test(challenge(res));
    const keyGot = (res) =>
      `${res.status} ${json(res.body) ? "JSON" : "not JSON"}${/resource_metadata/.test(challenge(res)) ? " + resource_metadata!" : ""}`;
    r = await rawMcp(keyUrl);
    record("no token on /mcp-key", "401 JSON, no OAuth discovery", keyGot(r), keyRefusal(r));
    r = await rawMcp(keyUrl, bearer("tok_owner_wrong_000000000000"));
    record("wrong token on /mcp-key", "401 JSON, no OAuth discovery", keyGot(r), keyRefusal(r));
    r = await rawMcp(keyUrl, bearer(OWNER_TOKEN.slice(0, -1)));
    record("owner token minus its last character on /mcp-key", "401 JSON", keyGot(r), keyRefusal(r));
    r = await rawMcp(keyUrl, bearer(unknown));
    record("forged OAuth-shaped token on /mcp-key", "401 JSON", keyGot(r), keyRefusal(r));
    r = await rawMcp(resource, { ...bearer(owner.access_token), Origin: "https://evil.example" });
    record("cross-site browser request: valid token + Origin https://evil.example", "403", r.status, r.status === 403);
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
    for (const [url, token] of [
      [resource, owner.access_token],
      [keyUrl, OWNER_TOKEN],
    ]) {
      const rebound = await rawRequest(url, {
        method: "POST",
        headers: { ...mcpHeaders, ...bearer(token) },
        body: initialize,
      });
      // /mcp-key answers 403 (Host check); on /mcp the provider already refuses the token (401): its audience is this origin's /mcp.
      record(
        `DNS rebinding: valid token + Host: evil.example on ${new URL(url).pathname}`,
        "refused (401/403/421)",
        rebound.status,
        [400, 401, 403, 421].includes(rebound.status),
      );
    }
    allRefused(from);
  });

  it("OAuth flow: audience, replayed code, PKCE, redirect URIs, consent CSRF, framing, XSS, login CSRF, scopes", async () => {
    const from = rows.length;

    // Token for another resource/audience.
    const outcome = async (flow, exchangeOverrides = {}) => {
      let code = flow.code;
      if (!code && flow.page.location) {
        const loc = new URL(flow.page.location, gateway.url);
        code = loc.searchParams.get("code");
        if (!code)
          return {
            refused: true,
            got: `/authorize ${flow.page.status} → ${loc.host}${loc.pathname} error=${loc.searchParams.get("error")}`,
          };
      }
      if (!code) {
        if (flow.consent)
          return {
            refused: true,
            got: `consent answered ${flow.consent.status}${flow.location ? ` → error=${flow.error}` : ""}`,
          };
        return { refused: true, got: `/authorize ${flow.page.status}` };
      }
      const exchanged = await driver.exchange({ ...flow, code }, exchangeOverrides);
      if (exchanged.status !== 200)
        return { refused: true, got: `code issued; /oauth/token ${exchanged.status} ${exchanged.json.error}` };
      const used = await rawMcp(resource, bearer(exchanged.json.access_token));
      return {
        refused: used.status === 401,
        got: `token issued (resource ${exchanged.json.resource ?? "?"}); /mcp answered ${used.status}`,
      };
    };
    let o = await outcome(await driver.authorize({ resource: "http://evil.example/mcp" }));
    record(
      "authorize for another resource (resource=http://evil.example/mcp)",
      "refused at /authorize or /oauth/token, or token refused at /mcp",
      o.got,
      o.refused,
    );
    o = await outcome(await driver.authorize(), { resource: "http://evil.example/mcp" });
    record(
      "code exchanged for another audience (resource=http://evil.example/mcp)",
      "400 invalid_target",
      o.got,
      o.refused,
    );

    // Replayed code.
    let flow = await driver.authorize();
    const firstUse = await driver.exchange(flow);
    const replay = await driver.exchange(flow);
    record(
      "replayed authorization code (second exchange)",
      "400 invalid_grant",
      `first ${firstUse.status}, replay ${replay.status} ${replay.json.error ?? ""}`,
      firstUse.status === 200 && replay.status === 400,
    );

    // PKCE.
    flow = await driver.authorize();
    let exchanged = await driver.exchange(flow, { code_verifier: pkce().verifier });
    record(
      "wrong PKCE verifier",
      "400 invalid_grant",
      `${exchanged.status} ${exchanged.json.error ?? ""}`,
      exchanged.status === 400,
    );
    flow = await driver.authorize();
    exchanged = await driver.token({
      grant_type: "authorization_code",
      code: flow.code,
      redirect_uri: callback.redirectUri,
      client_id: flow.client.client_id,
      resource,
    });
    record(
      "PKCE code exchanged without a verifier",
      "400",
      `${exchanged.status} ${exchanged.json.error ?? ""}`,
      exchanged.status === 400,
    );
    o = await outcome(await driver.authorize({ pkceMethod: null }));
    record("public client without PKCE (no code_challenge)", "refused", o.got, o.refused);
    o = await outcome(await driver.authorize({ pkceMethod: "plain" }));
    record("PKCE downgrade to code_challenge_method=plain", "refused", o.got, o.refused);
    flow = await driver.authorize();
    exchanged = await driver.exchange(flow, { redirect_uri: `${callback.origin}/other` });
    record(
      "code exchanged with another redirect_uri",
      "400",
      `${exchanged.status} ${exchanged.json.error ?? ""}`,
      exchanged.status === 400,
    );
    flow = await driver.authorize();
    const otherClient = await driver.register();
    exchanged = await driver.exchange(flow, { client_id: otherClient.client_id });
    record(
      "code exchanged by another client_id",
      "400/401",
      `${exchanged.status} ${exchanged.json.error ?? ""}`,
      exchanged.status === 400 || exchanged.status === 401,
    );

    // Open redirects.
    const evilRedirect = "https://evil.example/callback";
    const toEvil = (location) => Boolean(location) && new URL(location, gateway.url).hostname === "evil.example";
    flow = await driver.authorize({ redirectUri: evilRedirect });
    const leaked = toEvil(flow.page.location) || toEvil(flow.consent?.location);
    record(
      "open redirect: unregistered redirect_uri (signed in)",
      "4xx page, no redirect to it",
      `${flow.page.status}${flow.page.location ? ` → ${flow.page.location}` : ""}${flow.consent ? `; consent shown, answered ${flow.consent.status}` : ""}`,
      flow.page.status >= 400 && flow.page.status < 500 && !leaked,
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
      "no redirect to it",
      `${signedOut.status}${signedOut.location ? ` → ${signedOut.location}` : ""}`,
      !toEvil(signedOut.location),
    );
    for (const next of ["https://evil.example/steal", "//evil.example/steal", "/\\evil.example/steal"]) {
      const { fresh, page } = await signedOutLogin();
      const answer = await fresh.login(page, PASSWORD, { next });
      record(
        `open redirect: login with next=${next}`,
        "stays on the gateway's origin",
        `${answer.status}${answer.location ? ` → ${answer.location}` : ""}`,
        sameOrigin(answer.location),
      );
    }

    // CSRF on consent.
    const isBinding = (name) => name.startsWith("__Host-oauth-consent");
    flow = await driver.authorize({ consentCookie: (jar) => jar.headerWithout(isBinding) });
    record(
      "CSRF on consent: POST /authorize/consent without the binding cookie",
      "4xx, no code",
      `${flow.consent?.status ?? `no consent page (${flow.page.status})`}${flow.code ? " + code!" : ""} (binding cookie seen: ${driver.jar.names().some(isBinding)})`,
      flow.consent && flow.consent.status >= 400 && flow.consent.status < 500 && !flow.code,
    );
    flow = await driver.authorize({ consentCookie: () => "" });
    record(
      "CSRF on consent: cross-site POST with no cookies at all",
      "4xx, no code",
      `${flow.consent?.status}${flow.code ? " + code!" : ""}`,
      flow.consent && flow.consent.status >= 400 && flow.consent.status < 500 && !flow.code,
    );
    flow = await driver.authorize({ consentFields: { handle: randomToken(43) } });
    record(
      "CSRF on consent: forged handle (with the session cookies)",
      "4xx, no code",
      `${flow.consent?.status}${flow.code ? " + code!" : ""}`,
      flow.consent && flow.consent.status >= 400 && flow.consent.status < 500 && !flow.code,
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
    let login = await signedOutLogin();
    const fields = hiddenFields(login.page, "/login");
    let answer = await login.fresh.post("/login", { next: fields.next ?? "/", password: PASSWORD });
    record("CSRF on login: no csrf field (right password)", "403", answer.status, answer.status === 403);
    login = await signedOutLogin();
    answer = await login.fresh.post("/login", {
      ...hiddenFields(login.page, "/login"),
      csrf: randomToken(43),
      password: PASSWORD,
    });
    record("CSRF on login: forged csrf value (right password)", "403", answer.status, answer.status === 403);

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
        "isError naming the missing scope 'publish'",
        `granted '${narrow.scope}'; generate_image ${made.isError ? "error" : "ok"}; publish_asset ${published.isError ? "error" : "ok"}: ${text(published).slice(0, 80)}`,
        narrow.scope === "generate" &&
          !made.isError &&
          published.isError &&
          /scope/i.test(text(published)) &&
          /\bpublish\b/.test(text(published)),
      );
    } finally {
      await narrowMcp.close();
    }
    allRefused(from);
  });

  it("cross-user: mallory cannot reach the owner's assets, jobs, resources or downloads", async () => {
    const from = rows.length;
    const notFound = (result) => result.isError === true && /no (asset|job)|not found/i.test(text(result));
    let result = await mallory.call("get_asset_metadata", { asset_id: asset.asset_id });
    record(
      "cross-user get_asset_metadata (mallory → owner's asset_id)",
      "not found",
      text(result).slice(0, 70),
      notFound(result),
    );
    result = await mallory.call("get_job", { prompt_id: asset.job_id });
    record("cross-user get_job (mallory → owner's job id)", "not found", text(result).slice(0, 70), notFound(result));
    result = await mallory.call("cancel_job", { prompt_id: asset.job_id });
    record(
      "cross-user cancel_job (mallory → owner's job id)",
      "not found",
      text(result).slice(0, 70),
      notFound(result),
    );
    result = await mallory.call("view_image", { asset_id: asset.asset_id });
    record(
      "cross-user view_image (mallory → owner's asset_id)",
      "not found",
      text(result).slice(0, 70),
      notFound(result),
    );
    result = await mallory.call("image_to_image", { image: asset.asset_id, prompt: "stolen", steps: 2 });
    record(
      "cross-user image_to_image input (mallory uses owner's asset_id)",
      "refused",
      text(result).slice(0, 70),
      result.isError === true,
    );
    let read;
    try {
      read = `answered: ${JSON.stringify(await mallory.readResource(`comfy://assets/${asset.asset_id}`)).slice(0, 60)}`;
    } catch (error) {
      read = `error: ${error.message}`;
    }
    record(
      "cross-user resources/read comfy://assets/<owner's id>",
      "not found error",
      read.slice(0, 90),
      /^error: .*(not found|no asset)/i.test(read),
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
    for (const u of ["mallory", "local"]) {
      const forged = new URL(ownUrl);
      forged.searchParams.set("u", u);
      const res = await fetch(forged);
      record(`download: owner's signed URL with u=${u}`, "403", res.status, res.status === 403);
    }
    const unsigned = await fetch(`${gateway.url}/assets/${asset.asset_id}`);
    record("download: owner's asset without a signature", "403", unsigned.status, unsigned.status === 403);
    allRefused(from);
  });

  it("traversal names, oversize bodies and SSRF URLs", async () => {
    const from = rows.length;
    const code = (result) => /"error_code": "([A-Z_]+)"/.exec(text(result))?.[1] ?? text(result).slice(0, 60);
    for (const target of ["../x.png", "/etc/x.png", "a/../../x.png", "x\u0000.png", "x\n.png"]) {
      const result = await ownerMcp.call("publish_asset", { asset_id: asset.asset_id, target_filename: target });
      record(
        `traversal: publish_asset target_filename ${JSON.stringify(target)}`,
        "INVALID_TARGET_FILENAME",
        code(result),
        result.isError === true && /INVALID_TARGET_FILENAME|invalid/i.test(text(result)),
      );
    }
    let result = await ownerMcp.call("publish_asset", { asset_id: asset.asset_id, manifest_key: "../../x" });
    record(
      'traversal: publish_asset manifest_key "../../x"',
      "INVALID_MANIFEST_KEY",
      code(result),
      result.isError === true && /INVALID_MANIFEST_KEY|invalid/i.test(text(result)),
    );
    for (const name of ["../../etc/passwd", "gen/../../etc/passwd", "/etc/passwd"]) {
      result = await ownerMcp.call("unpublish", { filename: name });
      record(`traversal: unpublish ${JSON.stringify(name)}`, "refused", code(result), result.isError === true);
    }
    for (const path of [
      "/published/../x",
      "/published/../wrangler.toml",
      "/published/gen/..%2f..%2fwrangler.toml",
      "/published/%2e%2e/%2e%2e/package.json",
    ]) {
      const res = await rawRequest(`${gateway.url}${path}`);
      record(`traversal: GET ${path}`, "404/400, nothing served", res.status, res.status >= 400 && res.status < 500);
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
    for (const url of ssrf) {
      result = await ownerMcp.call("image_to_image", { image: url, prompt: "ssrf", steps: 2 });
      const policy = result.isError === true && !/could not download|failed with HTTP/i.test(text(result));
      record(`SSRF: image_to_image image=${url}`, "refused before any fetch", text(result).slice(0, 90), policy);
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
      record("/mcp-key on a gateway with no tokens configured", "refused (4xx/503)", k.status, k.status >= 400);
    } finally {
      await bare.stop();
    }
    allRefused(from);
  });

  // Last: once it passes, this client (127.0.0.1) cannot sign in for 15 minutes.
  it("brute-force login: more than 5 failures in 15 minutes → 429, even with the right password", async () => {
    const from = rows.length;
    const bruteDriver = driverFor();
    const clientId = (await bruteDriver.register()).client_id;
    const loginPage = async () =>
      (await bruteDriver.request(bruteDriver.authorizeUrl({ clientId, challenge: pkce().challenge }))).body;
    let page = await loginPage();
    const statuses = [];
    let limited;
    for (let attempt = 0; attempt < 8 && !limited; attempt++) {
      const answer = await bruteDriver.login(page, `guess-${attempt}`);
      wrongPasswordPosts++;
      statuses.push(
        answer.status === 401 && !/Wrong password/.test(answer.body) ? "401 (no 'Wrong password')" : answer.status,
      );
      if (answer.status === 429) limited = { at: wrongPasswordPosts, body: answer.body };
      else page = answer.status === 401 ? answer.body : await loginPage(); // the 401 page carries a fresh form
    }
    record(
      "brute-force login (wrong passwords from one client)",
      "429 'Too many attempts' after 5 failures",
      `${statuses.join(",")}${limited ? ` (429 at wrong attempt #${limited.at} of this file)` : " (never limited)"}`,
      limited !== undefined && limited.at <= 7 && /Too many attempts/.test(limited.body),
    );
    const right = await bruteDriver.login(await loginPage(), PASSWORD);
    record(
      "brute-force lockout: right password while limited",
      "429 'Too many attempts', no session",
      `${right.status}${right.location ? ` → ${right.location}` : ""}`,
      right.status === 429 && /Too many attempts/.test(right.body) && !bruteDriver.jar.has("__Host-owner-session"),
    );
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
