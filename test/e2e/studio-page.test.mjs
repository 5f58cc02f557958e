// The studio view as a web page (issue #15) in headless Chromium, against the real gateway
// (`wrangler dev`) and the fake ComfyUI. Loopback mode (`npm start`): images made by an MCP client
// show in /studio's gallery; a tile opens the asset with its details and actions, by mouse and by
// keyboard; no console error, no CSP violation, and not one request leaves the gateway's origin.
// As deployed (no loopback mode, OWNER_PASSWORD and MCP_TOKENS set): /studio asks to sign in, then
// shows the owner's assets and never a token user's; /studio/mcp refuses a request without the
// session (401) and one from another origin (403). A screenshot goes to docs/screenshots/.
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { OAuthDriver, launchChromium, pkce } from "./browser.mjs";
import { connectV2 } from "./clients.mjs";
import { startGateway } from "./gateway.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SCREENSHOT = join(root, "docs", "screenshots", "studio-page.png");
/** Any single page step (load, a tool call, a render): generous for 2 cores, far below the test timeout. */
const STEP_MS = 20_000;
const PASSWORD = "correct horse battery";
const MALLORY_TOKEN = "tok_mallory_studio_1234567890abcdef";
const SMALL_IMAGE = { width: 64, height: 64, steps: 2 };

const text = (result) => result?.content?.find((c) => c.type === "text")?.text ?? "";

let fake;
let browser;

beforeAll(async () => {
  fake = await startFakeComfy({ port: 0, stepDelayMs: 1, nodeDelayMs: 1 });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await fake?.close();
});

/** generate_image through an MCP client; the new asset's id. */
async function makeImage(client, prompt) {
  const made = await client.call("generate_image", { prompt, ...SMALL_IMAGE });
  if (made.isError || !made.structuredContent?.asset_id)
    throw new Error(`generate_image failed (${client.era}): ${text(made)}`);
  return made.structuredContent.asset_id;
}

/**
 * A page that records what a reviewer would look for: console errors, uncaught exceptions, CSP
 * violations (the listener goes in before the view's own script runs) and every request, of which
 * those off the gateway's origin are aborted and kept.
 */
async function watchedPage(gatewayUrl) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const seen = { errors: [], violations: [], requests: [], offOrigin: [] };
  const own = new URL(gatewayUrl).origin;
  await context.route(
    (url) => url.origin !== own,
    (route) => {
      seen.offOrigin.push(route.request().url());
      return route.abort();
    },
  );
  await context.exposeBinding("reportViolation", (_source, violation) => seen.violations.push(violation));
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) =>
      window.reportViolation(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`),
    );
  });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error") seen.errors.push(`console: ${message.text().slice(0, 400)}`);
  });
  page.on("pageerror", (error) => seen.errors.push(`pageerror: ${error.message}`));
  page.on("request", (request) => seen.requests.push(request.url()));
  return { page, context, seen };
}

/** Waits until the view has run its four loading calls (gallery, published, backends, jobs). */
async function studioLoaded(page) {
  await page.getByTestId("studio").waitFor({ timeout: STEP_MS });
  await page
    .getByTestId("status")
    .filter({ hasText: "Pick an asset" })
    .waitFor({ timeout: STEP_MS })
    .catch(async () => {
      throw new Error(
        `/studio did not finish loading; its status says: ${await page.getByTestId("status").textContent()}`,
      );
    });
}

/** The gallery's asset ids, in order. */
const galleryIds = (page) =>
  page.locator("button[data-gallery-id]").evaluateAll((tiles) => tiles.map((tile) => tile.dataset.galleryId));

/** Whether an <img> has loaded (a CSP block or a failed download leaves naturalWidth at 0). */
const imageLoaded = (image) => image.evaluate((img) => img.complete && img.naturalWidth > 0);

/** POST /studio/mcp from Node, as a forged or cookie-less request would come. */
async function studioCall(gatewayUrl, headers) {
  const response = await fetch(`${gatewayUrl}/studio/mcp`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/json, text/event-stream",
      Origin: gatewayUrl,
      ...headers,
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name: "list_assets", arguments: { limit: 100 } },
    }),
  });
  return { status: response.status, body: await response.text() };
}

describe("/studio in loopback mode (npm start)", () => {
  let gateway;
  let mcp;
  const made = [];

  beforeAll(async () => {
    gateway = await startGateway({ comfyUrl: fake.url });
    mcp = await connectV2(gateway.mcpUrl);
    made.push(await makeImage(mcp, "a lighthouse at dusk, oil painting"));
    made.push(await makeImage(mcp, "a red fox in fresh snow"));
  });

  afterAll(async () => {
    await mcp?.close();
    await gateway?.stop();
  });

  it("shows the MCP client's images; a tile opens its details and actions by mouse and by keyboard; nothing leaves the origin", async () => {
    const { page, context, seen } = await watchedPage(gateway.url);
    try {
      const response = await page.goto(`${gateway.url}/studio`);
      expect(response.status()).toBe(200);
      expect(response.headers()["content-security-policy"]).toMatch(/^default-src 'none'; script-src 'sha256-/);
      await studioLoaded(page);

      // The gallery: both assets, each an image with alt text, loaded from the gateway.
      expect(await galleryIds(page)).toEqual(expect.arrayContaining(made));
      for (const assetId of made) {
        const image = page.locator(`button[data-gallery-id="${assetId}"] img`);
        expect((await image.getAttribute("alt"))?.trim(), `alt text of ${assetId}`).toBeTruthy();
        await expect.poll(() => imageLoaded(image), { timeout: STEP_MS }).toBe(true);
      }
      expect(await page.locator("#backends-list li").count()).toBeGreaterThan(0);
      expect(await page.locator("#jobs-list li").count()).toBeGreaterThan(0);
      expect(await page.locator("#published-list li").count()).toBeGreaterThan(0);

      // Mouse: the first image opens as the current result, with provenance and actions.
      const [first, second] = made;
      await page.locator(`button[data-gallery-id="${first}"]`).click();
      const firstResult = page.locator(`#results img[data-asset-id="${first}"]`);
      await firstResult.waitFor({ timeout: STEP_MS });
      await expect.poll(() => imageLoaded(firstResult), { timeout: STEP_MS }).toBe(true);
      const results = page.locator("#results");
      expect(await results.locator("dl.provenance").textContent()).toContain("a lighthouse at dusk");
      for (const action of ["regenerate", "publish", "details"])
        expect(await results.locator(`button[data-action="${action}"]`).count(), action).toBe(1);

      // Keyboard: focus the second tile, Enter.
      const secondTile = page.locator(`button[data-gallery-id="${second}"]`);
      await secondTile.focus();
      await page.keyboard.press("Enter");
      await page.locator(`#results img[data-asset-id="${second}"]`).waitFor({ timeout: STEP_MS });
      expect(await results.locator("dl.provenance").textContent()).toContain("a red fox in fresh snow");

      // Details: get_asset_metadata's answer, in the details box, which takes the focus.
      await results.locator('button[data-action="details"]').click();
      const details = page.locator("#details");
      await details.locator("pre").waitFor({ timeout: STEP_MS });
      expect(await details.textContent()).toContain(second);

      // Publish: publish_asset in library mode; the link it returns and the published list show the file.
      await results.locator('button[data-action="publish"]').click();
      const publishedLink = page.locator('[data-testid="status"] a');
      await publishedLink.waitFor({ timeout: STEP_MS });
      const publishedUrl = await publishedLink.getAttribute("href");
      expect(publishedUrl).toMatch(/\/published\/.+\.(png|webp|jpg)$/);
      await expect
        .poll(async () => page.locator("#published-list a").evaluateAll((links) => links.map((a) => a.href)), {
          timeout: STEP_MS,
        })
        .toContain(publishedUrl);
      expect((await fetch(publishedUrl)).status, "the published file is served").toBe(200);

      mkdirSync(dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });

      expect(seen.errors, "console errors and uncaught exceptions").toEqual([]);
      expect(seen.violations, "CSP violations").toEqual([]);
      expect(seen.offOrigin, "requests off the gateway's origin").toEqual([]);
      expect(seen.requests.every((url) => new URL(url).origin === gateway.url)).toBe(true);
      // The page's tool calls went where bridge.ts sends them.
      expect(seen.requests.filter((url) => new URL(url).pathname === "/studio/mcp").length).toBeGreaterThan(4);
    } finally {
      await context.close();
    }
  });
});

describe("/studio as deployed (no loopback mode, OWNER_PASSWORD and MCP_TOKENS)", () => {
  let gateway;
  let ownerAsset;
  let malloryAsset;

  beforeAll(async () => {
    gateway = await startGateway({
      comfyUrl: fake.url,
      vars: {
        ALLOW_UNAUTHENTICATED_LOCAL: undefined,
        OWNER_PASSWORD: PASSWORD,
        MCP_TOKENS: `mallory:${MALLORY_TOKEN}`,
        COMFY_MCP_WAIT_SECONDS: "30",
      },
    });
    // The owner through OAuth on /mcp (a hosted agent), mallory through her static token on /mcp-key.
    const driver = new OAuthDriver(gateway.url, { password: PASSWORD, redirectUri: "http://127.0.0.1:9/callback" });
    await driver.signIn(
      driver.authorizeUrl({ clientId: (await driver.register()).client_id, challenge: pkce().challenge }),
    );
    const { access_token } = await driver.accessToken();
    const owner = await connectV2(`${gateway.url}/mcp`, { Authorization: `Bearer ${access_token}` });
    const mallory = await connectV2(`${gateway.url}/mcp-key`, { Authorization: `Bearer ${MALLORY_TOKEN}` });
    try {
      ownerAsset = await makeImage(owner, "the owner's harbour");
      malloryAsset = await makeImage(mallory, "mallory's mallard");
    } finally {
      await owner.close();
      await mallory.close();
    }
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it("asks to sign in, then shows the owner's asset and never the token user's", async () => {
    const { page, context, seen } = await watchedPage(gateway.url);
    try {
      await page.goto(`${gateway.url}/studio`);
      const loginForm = page.locator('form[method="post" i][action="/login"]');
      await loginForm.waitFor({ timeout: STEP_MS });
      expect(await page.getByTestId("studio").count(), "no studio before signing in").toBe(0);
      expect(await loginForm.locator('input[name="next"]').getAttribute("value")).toBe("/studio");
      await loginForm.locator('input[name="password"]').fill(PASSWORD);
      const [signedIn] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/login"),
        loginForm.getByRole("button", { name: "Sign in" }).click(),
      ]);
      expect(signedIn.status()).toBe(303);
      // Sign-in returns to the page that asked for it (src/auth/routes.ts signInTarget).
      await page.waitForLoadState();
      expect(new URL(page.url()).pathname).toBe("/studio");
      await studioLoaded(page);

      const ids = await galleryIds(page);
      expect(ids).toContain(ownerAsset);
      expect(ids).not.toContain(malloryAsset);
      expect(await page.content()).not.toContain(malloryAsset);
      await expect
        .poll(() => imageLoaded(page.locator(`button[data-gallery-id="${ownerAsset}"] img`)), { timeout: STEP_MS })
        .toBe(true);

      // Mallory's asset is not reachable through the owner's page either.
      const probe = await page.evaluate(async (assetId) => {
        const response = await fetch("/studio/mcp", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: 1,
            method: "tools/call",
            params: { name: "get_asset_metadata", arguments: { asset_id: assetId } },
          }),
        });
        return { status: response.status, body: await response.text() };
      }, malloryAsset);
      expect(probe.status).toBe(200);
      expect(probe.body).toMatch(/"isError":\s*true/);

      // The session cookie makes the call; without it, or from another origin, it is refused.
      const cookie = (await context.cookies(gateway.url)).find((c) => c.name === "__Host-owner-session");
      expect(cookie, "the owner session cookie").toBeTruthy();
      const session = `${cookie.name}=${cookie.value}`;
      expect((await studioCall(gateway.url, { Cookie: session })).status).toBe(200);
      const anonymous = await studioCall(gateway.url, {});
      expect(anonymous.status).toBe(401);
      expect(JSON.parse(anonymous.body)).toMatchObject({ error: "not_signed_in" });
      const forged = await studioCall(gateway.url, { Cookie: session, Origin: "https://evil.example" });
      expect(forged.status).toBe(403);

      expect(seen.errors, "console errors and uncaught exceptions").toEqual([]);
      expect(seen.violations, "CSP violations").toEqual([]);
      expect(seen.offOrigin, "requests off the gateway's origin").toEqual([]);
    } finally {
      await context.close();
    }
  });
});
