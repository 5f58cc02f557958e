// Helpers for the OAuth end-to-end tests: a headless Debian Chromium (playwright-core), PKCE, a
// tiny cookie jar, an HTML form reader and a fetch-driven authorization-code flow (login, consent,
// token exchange) for the cases a browser adds nothing to.
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import http from "node:http";
import { chromium } from "playwright-core";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Launches Debian's Chromium. Missing → a clear error (the browser test must fail, not skip). */
export async function launchChromium() {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}, so the OAuth browser test cannot run. Install Debian's chromium ` +
        "(`apt-get install -y chromium`; .ci/run does this before `npm test`) or set CHROMIUM_PATH.",
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}

const base64url = (bytes) => Buffer.from(bytes).toString("base64url");

/** A PKCE pair (RFC 7636, S256). */
export function pkce() {
  const verifier = base64url(randomBytes(48));
  return { verifier, challenge: base64url(createHash("sha256").update(verifier).digest()) };
}

export const randomState = () => base64url(randomBytes(16));

/** Cookies for one host: enough for a login session driven with fetch. */
export class CookieJar {
  constructor() {
    this.cookies = new Map();
  }
  /** Takes the Set-Cookie headers of a response (deletions included). */
  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(";");
      const at = pair.indexOf("=");
      const name = pair.slice(0, at).trim();
      const value = pair.slice(at + 1).trim();
      const expired =
        attrs.some((a) => /^\s*max-age\s*=\s*(0|-\d+)\s*$/i.test(a)) ||
        attrs.some((a) => /^\s*expires\s*=/i.test(a) && Date.parse(a.split("=").slice(1).join("=")) < Date.now());
      if (expired || value === "") this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }
  header() {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ");
  }
  /** The Cookie header without the cookies `drop(name)` selects. */
  headerWithout(drop) {
    return [...this.cookies]
      .filter(([name]) => !drop(name))
      .map(([name, value]) => `${name}=${value}`)
      .join("; ");
  }
  names() {
    return [...this.cookies.keys()];
  }
  has(name) {
    return this.cookies.has(name);
  }
  clone() {
    const jar = new CookieJar();
    for (const [name, value] of this.cookies) jar.cookies.set(name, value);
    return jar;
  }
}

const decodeEntities = (s) =>
  s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos|#39);/gi, (_, e) => {
    const k = e.toLowerCase();
    if (k === "amp") return "&";
    if (k === "lt") return "<";
    if (k === "gt") return ">";
    if (k === "quot") return '"';
    if (k === "apos") return "'";
    if (k.startsWith("#x")) return String.fromCodePoint(parseInt(k.slice(2), 16));
    return String.fromCodePoint(Number(k.slice(1)));
  });

/** Every `<tag …>` start tag of that name in the HTML, attributes decoded (names lower-cased). */
export function tags(html, name) {
  const out = [];
  for (const match of html.matchAll(new RegExp(`<${name}\\b([^>]*)>`, "gi"))) {
    const attrs = {};
    for (const a of match[1].matchAll(/([^\s=/"'>]+)(?:\s*=\s*("([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
      attrs[a[1].toLowerCase()] = decodeEntities(a[3] ?? a[4] ?? a[5] ?? "");
    }
    out.push(attrs);
  }
  return out;
}

/** The hidden inputs of the form posting to `action` (the whole page when no such form). */
export function hiddenFields(html, action) {
  const form = new RegExp(
    `<form\\b[^>]*action\\s*=\\s*["']?${action.replace(/[/.]/g, "\\$&")}["'\\s>][\\s\\S]*?</form>`,
    "i",
  ).exec(html);
  const fields = {};
  for (const input of tags(form ? form[0] : html, "input")) {
    if ((input.type ?? "").toLowerCase() === "hidden" && input.name) fields[input.name] = input.value ?? "";
  }
  return fields;
}

/** A small HTTP server standing in for an OAuth client's redirect URI. */
export async function startCallbackServer() {
  const hits = [];
  const server = http.createServer((request, response) => {
    hits.push(request.url);
    response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    response.end("<!doctype html><title>callback</title><p>callback received</p>");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    redirectUri: `http://127.0.0.1:${port}/callback`,
    hits,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/**
 * Drives the gateway's OAuth endpoints with fetch. One instance = one browser-like session (its
 * cookie jar); `signIn` logs the owner in, `authorize` walks /authorize → consent → redirect.
 */
export class OAuthDriver {
  constructor(baseUrl, { password, redirectUri }) {
    this.base = baseUrl;
    this.password = password;
    this.redirectUri = redirectUri;
    this.jar = new CookieJar();
  }

  /** fetch with the jar; no redirect following (Location is what we look at). */
  async request(path, init = {}) {
    const { cookie, ...rest } = init;
    const headers = new Headers(rest.headers);
    const cookies = cookie ?? this.jar.header();
    if (cookies) headers.set("Cookie", cookies);
    const response = await fetch(new URL(path, this.base), { ...rest, headers, redirect: "manual" });
    if (cookie === undefined) this.jar.store(response);
    const body = await response.text();
    return { status: response.status, headers: response.headers, body, location: response.headers.get("location") };
  }

  post(path, fields, init = {}) {
    const body = fields instanceof URLSearchParams ? fields : new URLSearchParams(fields);
    return this.request(path, {
      ...init,
      method: "POST",
      body,
      headers: { "Content-Type": "application/x-www-form-urlencoded", ...init.headers },
    });
  }

  async register(overrides = {}) {
    const response = await fetch(new URL("/oauth/register", this.base), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        redirect_uris: [this.redirectUri],
        client_name: "Test <b>client</b>",
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        ...overrides,
      }),
    });
    const json = await response.json().catch(() => ({}));
    if (!response.ok || !json.client_id)
      throw new Error(`client registration failed: HTTP ${response.status} ${JSON.stringify(json)}`);
    return json;
  }

  authorizeUrl({
    clientId,
    redirectUri = this.redirectUri,
    scopes = ["generate", "publish"],
    resource = `${this.base}/mcp`,
    state = randomState(),
    challenge,
    method = "S256",
  }) {
    const url = new URL("/authorize", this.base);
    url.searchParams.set("response_type", "code");
    url.searchParams.set("client_id", clientId);
    url.searchParams.set("redirect_uri", redirectUri);
    if (challenge) url.searchParams.set("code_challenge", challenge);
    if (method) url.searchParams.set("code_challenge_method", method);
    url.searchParams.set("state", state);
    if (scopes) url.searchParams.set("scope", scopes.join(" "));
    if (resource) url.searchParams.set("resource", resource);
    return url.toString();
  }

  /**
   * Posts the login form of `page` (the HTML of a login page) with `password` and optional
   * overrides; `init` adds request options (e.g. a `CF-Connecting-IP` header: `wrangler dev` takes
   * the client's, so a test can sign in "from" any address).
   */
  login(page, password = this.password, overrides = {}, init = {}) {
    return this.post("/login", { ...hiddenFields(page, "/login"), password, ...overrides }, init);
  }

  /** The signed-in owner's /grants page: every grant with its client id and revoke form, and the sign-out CSRF. */
  async grants() {
    const page = await this.request("/grants");
    const grants = [...page.body.matchAll(/<li>([\s\S]*?)<\/li>/g)].map(([, item]) => ({
      clientId: /client id <code>([^<]*)<\/code>/.exec(item)?.[1],
      fields: hiddenFields(item, "/grants/revoke"),
    }));
    return { ...page, grants, signOut: hiddenFields(page.body, "/logout") };
  }

  /** Signs the owner in through an /authorize URL (login page → 303). */
  async signIn(authorizeUrl) {
    const page = await this.request(authorizeUrl);
    if (!/name\s*=\s*["']?password/.test(page.body))
      throw new Error(`expected the login page at /authorize, got HTTP ${page.status}: ${page.body.slice(0, 300)}`);
    const result = await this.login(page.body);
    if (result.status !== 303) throw new Error(`sign-in failed: HTTP ${result.status}: ${result.body.slice(0, 300)}`);
    return result;
  }

  /**
   * Registers a client (unless given), opens /authorize while signed in, and submits the consent
   * form. Returns the consent page, the redirect (Location) and the parsed code/state/error.
   * `pkceMethod`: "S256" (default), "plain", or null (no PKCE at all).
   */
  async authorize({
    client,
    scopes = ["generate", "publish"],
    approve = scopes,
    decision = "approve",
    resource,
    redirectUri = this.redirectUri,
    consentFields = {},
    consentCookie,
    pkceMethod = "S256",
  } = {}) {
    client ??= await this.register();
    const { verifier, challenge } = pkce();
    const state = randomState();
    const plain = pkceMethod === "plain";
    const url = this.authorizeUrl({
      clientId: client.client_id,
      redirectUri,
      scopes,
      resource,
      state,
      challenge: pkceMethod ? (plain ? verifier : challenge) : undefined,
      method: pkceMethod,
    });
    const page = await this.request(url);
    const result = { client, verifier, challenge, state, url, page, redirectUri };
    if (page.status !== 200 || !/\/authorize\/consent/.test(page.body)) return result;
    const form = new URLSearchParams({ ...hiddenFields(page.body, "/authorize/consent"), ...consentFields });
    for (const scope of approve) form.append("scope", scope);
    form.set("decision", decision);
    // consentCookie: what the consent POST carries instead of the jar (a CSRF attempt).
    const answer = await this.post(
      "/authorize/consent",
      form,
      consentCookie === undefined ? {} : { cookie: consentCookie(this.jar) },
    );
    result.consent = answer;
    if (answer.location) {
      const location = new URL(answer.location, this.base);
      result.location = location;
      result.code = location.searchParams.get("code");
      result.error = location.searchParams.get("error");
      result.returnedState = location.searchParams.get("state");
    }
    return result;
  }

  /** POST /oauth/token (form-encoded); returns { status, json }. */
  async token(fields, path = "/oauth/token") {
    const response = await fetch(new URL(path, this.base), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields),
    });
    const text = await response.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = { raw: text };
    }
    return { status: response.status, json };
  }

  exchange({ code, verifier, client, redirectUri = this.redirectUri, resource = `${this.base}/mcp` }, overrides = {}) {
    return this.token({
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri,
      client_id: client.client_id,
      code_verifier: verifier,
      resource,
      ...overrides,
    });
  }

  /** The full fetch-driven flow: consent with `approve`, then the code exchange. Throws on any refusal. */
  async accessToken({ scopes = ["generate", "publish"], approve = scopes } = {}) {
    const flow = await this.authorize({ scopes, approve });
    if (!flow.code)
      throw new Error(
        `no code: consent page HTTP ${flow.page.status}, consent answer ${flow.consent?.status} ${flow.consent?.location ?? flow.consent?.body?.slice(0, 300)}`,
      );
    const { status, json } = await this.exchange(flow);
    if (status !== 200 || !json.access_token)
      throw new Error(`code exchange failed: HTTP ${status} ${JSON.stringify(json)}`);
    return { ...json, client: flow.client };
  }
}

/** A raw MCP initialize POST (what every client sends first); returns status, headers, body text. */
export async function rawMcp(url, headers = {}, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream", ...headers },
    body:
      body ??
      JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1.0.0" } },
      }),
  });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

/** A markdown table of attack rows. */
export function markdownTable(rows) {
  const cell = (v) => String(v).replace(/\|/g, "\\|").replace(/\s+/g, " ").slice(0, 160);
  return [
    "| # | attack | expected | got | refused? |",
    "|---|---|---|---|---|",
    ...rows.map(
      (r, i) =>
        `| ${i + 1} | ${cell(r.attack)} | ${cell(r.expected)} | ${cell(r.got)} | ${r.refused ? "yes" : "**NO**"} |`,
    ),
  ].join("\n");
}
