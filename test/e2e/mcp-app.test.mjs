// The studio view as an MCP App (issue #15) in a host nobody here wrote: the MCP Inspector's web
// client (2.12.0, which renders apps with ext-apps' AppBridge) in headless Chromium, against the
// real gateway (`wrangler dev`, loopback mode) and the fake ComfyUI. Through the Inspector's own
// UI: connect, call a tool without a view (its JSON shows as text in the result panel), open
// generate_image in the Apps tab (the view renders the finished generation's image, loaded from
// the gateway's signed download URL inside the app's CSP), then press the view's Regenerate
// button, which calls `regenerate` through the host, and see the new asset replace the old one.
// After each, the view must say the job completed and hide its progress bar. Screenshots of both
// states go to docs/screenshots/. Then two slow jobs (the fake's sampler steps slowed to ~7 s a
// job), with the view's progress box, status line and elapsed time sampled every 200 ms: while the
// host still runs generate_image, the view (polling get_queue_status, then get_job, through the
// host) shows "running · node n/m KSampler · step s/20" with the step and the clock advancing, and
// the result then replaces it; with wait_seconds 1 the tool answers with a running job handle,
// which the view follows with get_job (its progress moves on) until that job's image shows. Failures name their cause (not in the Apps tab = no
// _meta.ui.resourceUri; image blocked = CSP; the Inspector's own "App failed to load") and carry
// the frames' console, AppBridge messages included.
//
// Frames: Inspector page → sandbox proxy iframe (its own origin, http://127.0.0.1:<sandbox port>)
// → inner iframe (srcdoc, opaque origin) holding the view. The browser talks only to the
// Inspector; its Node backend is the MCP client the gateway sees (no Origin header).
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { launchChromium } from "./browser.mjs";
import { startGateway } from "./gateway.mjs";
import { startInspectorWeb } from "./inspector-web.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SCREENSHOTS = join(root, "docs", "screenshots");
/** Any single UI step (connect, a tool call, a render): generous for 2 cores, far below the test timeout. */
const STEP_MS = 20_000;
const PROMPT = "a lighthouse at dusk, oil painting";
/** A job of SLOW_STEPS sampler steps of SLOW_STEP_MS each: long enough for the view's progress to show. */
const SLOW_STEPS = 20;
const SLOW_STEP_MS = 350;
/** Longest a slow job may take to show its result in the view (it runs ~7 s). */
const RECORD_MS = STEP_MS;
/** The view's progress line for a job in its sampler: "running · node 3/7 KSampler · step 9/20". */
const RUNNING = new RegExp(`^running · node \\d+/\\d+ KSampler · step (\\d+)/${SLOW_STEPS}$`);
/** The status line once the view holds a job handle: "Job <id> is running." */
const HANDLE = /^Job (\S+) is (?:queued|running|submitting)\.$/;

let fake;
let gateway;
let inspector;
let browser;
let page;
/** Console lines of every frame (Inspector, sandbox proxy, view): the first thing to read on a failure. */
const consoleLines = [];
/** Requests the browser tried to send off this machine (the Inspector's page links Google Fonts). */
const blocked = [];

/** The frames' console for a failure report: what they logged, then the last AppBridge messages (debug). */
const recentConsole = () =>
  [
    ...consoleLines.filter((line) => !line.startsWith("[debug]")).slice(-30),
    "(last AppBridge messages:)",
    ...consoleLines.filter((line) => line.startsWith("[debug]")).slice(-12),
  ].join("\n");
/** The view's frame: sandbox proxy iframe, then the app's own iframe inside it. */
const viewFrame = () => page.frameLocator('[data-testid="apps-form"] iframe').frameLocator("iframe");

beforeAll(async () => {
  fake = await startFakeComfy({ port: 0, stepDelayMs: 1, nodeDelayMs: 1 });
  gateway = await startGateway({ comfyUrl: fake.url });
  [inspector, browser] = await Promise.all([startInspectorWeb({ mcpUrl: gateway.mcpUrl }), launchChromium()]);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // Nothing leaves the machine: only loopback (Inspector, sandbox, gateway downloads) is let through.
  await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/]|localhost[:/])/, (route) => {
    blocked.push(route.request().url());
    return route.abort();
  });
  page = await context.newPage();
  page.on("console", (message) => {
    const where = message.location()?.url || "?";
    consoleLines.push(`[${message.type()}] ${where.slice(0, 60)}: ${message.text().slice(0, 400)}`);
  });
  page.on("pageerror", (error) => consoleLines.push(`[pageerror] ${error.message}`));
  mkdirSync(SCREENSHOTS, { recursive: true });

  // Connect with the server card's switch (the launcher seeded it with the gateway's URL).
  await page.goto(inspector.url);
  const toggle = page.getByRole("switch", { name: /Connect or disconnect/ });
  // Mantine draws its track over the input, so a normal click reports it as covered.
  await toggle.check({ force: true, timeout: STEP_MS });
  const status = page.getByTestId("connection-status");
  await status
    .and(page.locator('[data-status="connected"]'))
    .waitFor({ timeout: STEP_MS })
    .catch(async () => {
      throw new Error(
        `the Inspector did not connect to ${gateway.mcpUrl}: status ${await status.getAttribute("data-status")}, ` +
          `error ${await status.getAttribute("data-error-message")}\n${recentConsole()}\n${inspector.logs()}`,
      );
    });
  // The monitoring sidebar takes a third of the width; the screenshots are about the view.
  await page.getByRole("button", { name: "Close monitoring sidebar" }).click();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await inspector?.stop();
  await gateway?.stop();
  await fake?.close();
});

/**
 * Selects a tool in the current screen's list. The list shows titles ("Generate an image"), not
 * names, so the tool is found with the list's own search (it matches names too) and must then be
 * the only entry left.
 */
async function pick(searchLabel, name, hint = "") {
  const search = page.getByRole("textbox", { name: searchLabel });
  await search.fill(name, { timeout: STEP_MS });
  // Screens stay mounted when hidden, so only the list in the search box's own card counts.
  const card = search.locator("xpath=ancestor::div[contains(@class, 'mantine-Card-root')][1]");
  const entries = card.locator("button.list-item");
  await entries
    .first()
    .waitFor({ timeout: 5_000 })
    .catch(() => undefined);
  const count = await entries.count();
  if (count !== 1) {
    const shown = await page
      .getByRole("heading", { name: /\(\d+\)$/ })
      .first()
      .textContent();
    throw new Error(
      `searching "${name}" in the Inspector's list (${shown}) left ${count} entries, not 1${count === 0 && hint ? `: ${hint}` : ""}`,
    );
  }
  await entries.click();
}

/**
 * Switches the Inspector's top-level screen (a Mantine SegmentedControl: its label takes the
 * click) and waits until that screen is the one shown.
 */
async function openScreen(name, shownWhen) {
  await page
    .locator("header label")
    .filter({ hasText: new RegExp(`^${name}$`) })
    .click();
  await shownWhen.waitFor({ state: "visible", timeout: STEP_MS });
}

describe("MCP Inspector web client as the host", () => {
  it("a tool without a view (get_defaults) still works: its JSON shows as text in the result panel", async () => {
    const tools = page.getByTestId("tools-screen");
    await openScreen("Tools", tools);
    await pick("Search tools...", "get_defaults");
    await tools.getByRole("button", { name: "Execute Tool" }).click();
    await tools.getByRole("heading", { name: "Results" }).waitFor({ timeout: STEP_MS });
    // The panel is a read-only Ace editor holding the result's text content (pretty-printed JSON).
    // Ace draws only the rows in view, so the whole text is read from the editor itself.
    const editor = tools.locator(".ace_editor").first();
    const text = await editor.evaluate((element) => element.env?.editor?.getValue() ?? element.textContent);
    const shown = JSON.parse(text);
    expect(shown.image).toMatchObject({ steps: expect.any(Number), width: expect.any(Number) });
  });

  it("generate_image renders the studio view with the image; its Regenerate button brings a new asset", async () => {
    await openScreen("Apps", page.getByTestId("apps-form"));
    // The Apps screen lists only the tools whose tools/list entry names a ui:// resource
    // (_meta.ui.resourceUri); without it generate_image is not there to open.
    await pick("Search apps...", "generate_image", "its tools/list entry must carry _meta.ui.resourceUri");

    const form = page.getByTestId("apps-form");
    await form.getByRole("textbox", { name: "prompt", exact: true }).fill(PROMPT);
    // Small and few steps: the fake ComfyUI renders a real PNG of that size.
    await form.getByRole("textbox", { name: "width", exact: true }).fill("64");
    await form.getByRole("textbox", { name: "height", exact: true }).fill("64");
    await form.getByRole("textbox", { name: "steps", exact: true }).fill("2");
    await form.getByTestId("open-app").click();

    // The Inspector calls the tool, reads the ui:// resource and hands it to the sandbox; the view
    // then gets the tool result over the AppBridge and shows the finished generation.
    const view = viewFrame();
    const first = view.locator('[data-testid="studio"] img[data-asset-id]').first();
    await untilRendered(first, "the generated image");
    const firstId = await first.getAttribute("data-asset-id");
    expect(firstId).toMatch(/\S/);
    expect(await first.getAttribute("alt")).toContain(PROMPT);
    await untilLoaded(first, "the generated image");
    await untilSettled(view, "the generation");
    await page.screenshot({ path: join(SCREENSHOTS, "inspector-studio.png") });

    // Regenerate: the view calls `regenerate` through the host (tools/call over the AppBridge) and
    // follows the new job with get_job until it shows its asset in place of the old one.
    const regenerate = view
      .getByRole("button", { name: /^regenerate/i })
      .and(view.locator('[data-action="regenerate"]'));
    await regenerate.first().click({ timeout: STEP_MS });
    const second = view.locator(`[data-testid="studio"] img[data-asset-id]:not([data-asset-id="${firstId}"])`).first();
    await untilRendered(second, "the regenerated image");
    const secondId = await second.getAttribute("data-asset-id");
    expect(secondId).not.toBe(firstId);
    await untilLoaded(second, "the regenerated image");
    await untilSettled(view, "the regeneration");
    // The old result is replaced, not kept next to the new one.
    expect(await view.locator(`[data-testid="studio"] img[data-asset-id="${firstId}"]`).count()).toBe(0);
    await page.screenshot({ path: join(SCREENSHOTS, "inspector-regenerate.png") });
    expect(
      blocked.every((url) => /fonts\.(googleapis|gstatic)\.com/.test(url)),
      blocked.join("\n"),
    ).toBe(true);
  });

  it("while the host runs generate_image, the view shows its live progress (node, step, elapsed), then the result", async () => {
    // 20 steps of 350 ms: the sampler alone runs 7 s, long enough for several of the view's 1.5 s polls.
    fake.setTiming({ stepDelayMs: SLOW_STEP_MS });
    try {
      const prompt = "a windmill in a storm, watercolour";
      await openApp({ prompt, steps: String(SLOW_STEPS) });
      const view = viewFrame();
      // The tool is still running (its result comes after the 7 s job): the view finds the caller's
      // running prompt with get_queue_status and shows get_job's progress for it.
      const timeline = await recordProgress(view);
      const shown = describeTimeline(timeline);
      const running = timeline.filter((sample) => sample.visible && RUNNING.test(sample.text));
      expect(running.length, `the view never showed the job running with node and step:\n${shown}`).toBeGreaterThan(0);
      expect(
        running.every((sample) => sample.images === 0),
        `progress and a result at once:\n${shown}`,
      ).toBe(true);
      const steps = running.map((sample) => Number(RUNNING.exec(sample.text)[1]));
      expect(
        steps.at(-1) > steps[0] && steps.every((step, i) => i === 0 || step >= steps[i - 1]),
        `the step never advanced (or went back) while the job ran: ${steps.join(", ")}\n${shown}`,
      ).toBe(true);
      const elapsed = timeline
        .filter((sample) => sample.visible)
        .map((sample) => secondsShown(sample.elapsed))
        .filter(Number.isFinite);
      expect(
        Math.max(...elapsed) - Math.min(...elapsed),
        `the elapsed time did not advance while the job ran: ${elapsed.join(", ") || "(never shown)"}\n${shown}`,
      ).toBeGreaterThanOrEqual(3);
      // Then the tool's result arrives and replaces the progress with the image.
      const image = view.locator('[data-testid="studio"] img[data-asset-id]').first();
      await untilRendered(image, "the generated image after the progress");
      expect(await image.getAttribute("alt")).toContain(prompt);
      await untilLoaded(image, "the generated image after the progress");
      await untilSettled(view, "the slow generation");
    } finally {
      fake.setTiming({ stepDelayMs: 1 });
    }
  });

  it("a job handle (wait_seconds 1) is followed with get_job until the image shows", async () => {
    fake.setTiming({ stepDelayMs: SLOW_STEP_MS });
    try {
      const prompt = "a red fox in deep snow, ink drawing";
      await openApp({ prompt, steps: String(SLOW_STEPS), wait_seconds: "1" });
      const view = viewFrame();
      const timeline = await recordProgress(view);
      const shown = describeTimeline(timeline);
      // The tool answers after 1 s with the still-running job: the view says so (only a job
      // result does; while the tool runs the status line says "Generating: …").
      const handed = timeline.findIndex((sample) => HANDLE.test(sample.status));
      expect(handed, `the view never showed the tool's job handle:\n${shown}`).toBeGreaterThanOrEqual(0);
      const jobId = HANDLE.exec(timeline[handed].status)[1];
      // Then it follows the job with get_job: the progress keeps moving after the handle.
      const following = timeline.slice(handed).filter((sample) => sample.visible && RUNNING.test(sample.text));
      const steps = following.map((sample) => Number(RUNNING.exec(sample.text)[1]));
      expect(
        new Set(steps).size >= 2 && steps.at(-1) > steps[0],
        `the progress did not move after the handle (steps ${steps.join(", ")}):\n${shown}`,
      ).toBe(true);
      const image = view.locator(`[data-testid="studio"] article[data-job-id="${jobId}"] img[data-asset-id]`).first();
      await untilRendered(image, `the image of the followed job ${jobId}`);
      expect(await image.getAttribute("alt")).toContain(prompt);
      await untilLoaded(image, "the followed job's image");
      await untilSettled(view, "the followed job");
    } finally {
      fake.setTiming({ stepDelayMs: 1 });
    }
  });
});

/**
 * Waits for `locator` inside the view; fails early, with the Inspector's own error, the view's
 * status line and the frames' console, if the app failed to load or its status says so.
 */
async function untilRendered(locator, what) {
  const failed = page.getByTestId("apps-error");
  const outcome = await Promise.race([
    locator.waitFor({ timeout: STEP_MS }).then(() => "rendered"),
    failed.waitFor({ timeout: STEP_MS }).then(() => "failed"),
  ]).catch((error) => error);
  if (outcome === "rendered") return;
  const reason =
    outcome === "failed" ? `the Inspector says: ${await failed.textContent()}` : `not there after ${STEP_MS} ms`;
  const appStatus = await page
    .getByTestId("apps-form")
    .getAttribute("data-app-status")
    .catch(() => null);
  const viewStatus = await viewFrame()
    .getByTestId("status")
    .textContent({ timeout: 1_000 })
    .catch(() => "(no view)");
  throw new Error(
    `${what} did not show in the view: ${reason}\n` +
      `app status: ${appStatus}; view status: ${viewStatus}\nframes: ${page
        .frames()
        .map((frame) => frame.url() || "(blank)")
        .join(", ")}\nconsole:\n${recentConsole()}`,
  );
}

/** The <img> really loaded (the app's CSP admits the gateway's download URL), not a broken icon. */
async function untilLoaded(image, what) {
  await image.scrollIntoViewIfNeeded();
  await expect
    .poll(() => image.evaluate((img) => img.complete && img.naturalWidth > 0), {
      timeout: STEP_MS,
      message: `${what} is in the view but never loaded (${await image.getAttribute("src")}): CSP img-src or download URL?\n${recentConsole()}`,
    })
    .toBe(true);
}

/** The view says the job completed and no longer shows a progress bar under the finished result. */
async function untilSettled(view, what) {
  await expect
    .poll(() => view.getByTestId("status").textContent(), { timeout: STEP_MS, message: `${what}: status line` })
    .toMatch(/completed/i);
  const progress = view.getByRole("progressbar");
  await progress.waitFor({ state: "hidden", timeout: 5_000 }).catch(async () => {
    const box = await progress.evaluate((bar) => {
      const holder = bar.closest("[hidden]");
      return holder ? `its container is [hidden] but computes display: ${getComputedStyle(holder).display}` : "";
    });
    throw new Error(
      `${what} completed ("${await view.getByTestId("status").textContent()}") but the view still shows its ` +
        `progress bar ("${await progress.evaluate((bar) => bar.parentElement?.textContent ?? "")}"); ${box}`,
    );
  });
}

/** Back to the Apps form (if an app is open), fill generate_image's arguments and open the app again. */
async function openApp(values) {
  const form = page.getByTestId("apps-form");
  const back = form.getByRole("button", { name: "Back to Input" });
  if (await back.isVisible()) await back.click();
  for (const [name, value] of Object.entries({ width: "64", height: "64", ...values }))
    await form.getByRole("textbox", { name, exact: true }).fill(value, { timeout: STEP_MS });
  await form.getByTestId("open-app").click();
}

/**
 * What the view shows while a job runs, sampled every 200 ms from the moment the app opens until a
 * result image is in it (or RECORD_MS pass): the progress box (shown or not, its text and elapsed
 * time), the status line and how many result images there are. Repeated samples are dropped.
 */
async function recordProgress(view) {
  const started = Date.now();
  const timeline = [];
  while (Date.now() - started < RECORD_MS) {
    const sample = await view
      .locator("#progress-box")
      .evaluate(
        (box) => ({
          visible: !box.hidden && getComputedStyle(box).display !== "none",
          text: document.getElementById("progress-text")?.textContent ?? "",
          elapsed: document.getElementById("elapsed")?.textContent ?? "",
          status: document.getElementById("status")?.textContent ?? "",
          images: document.querySelectorAll("#results img[data-asset-id]").length,
        }),
        undefined,
        { timeout: 1_000 },
      )
      .catch(() => undefined);
    if (sample) {
      const last = timeline.at(-1);
      const same = last && Object.keys(sample).every((key) => last[key] === sample[key]);
      if (!same) timeline.push({ t: Date.now() - started, ...sample });
      if (sample.images > 0) return timeline;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`no result in the view after ${RECORD_MS} ms:\n${describeTimeline(timeline)}`);
}

/** A timeline for a failure message, one sample a line, then the frames' console. */
function describeTimeline(timeline) {
  return [
    ...timeline.map(
      (s) =>
        `+${s.t} ms: ${s.visible ? `progress "${s.text}" elapsed "${s.elapsed}"` : "no progress"}; ` +
        `status "${s.status}"; ${s.images} image(s)`,
    ),
    "console:",
    recentConsole(),
  ].join("\n");
}

/** The view's elapsed time ("7 s", "1 min 3 s") in seconds; NaN when it shows none. */
function secondsShown(text) {
  const match = /^(?:(\d+) min )?(\d+) s$/.exec(text.trim());
  return match ? Number(match[1] ?? 0) * 60 + Number(match[2]) : Number.NaN;
}
