// A pool of ComfyUI backends (issue #8), end to end over wrangler dev: three fake ComfyUIs "a", "b"
// and "c" (only c has the checkpoint only-on-c.safetensors) behind one gateway (COMFYUI_BACKENDS).
// list_backends and get_queue_status show the pool; jobs are routed by model availability and by
// queue length, or pinned by name; assets are read back from the backend that made them; a backend
// killed mid-run loses its open jobs quickly (or hands them to another backend when the caller asked
// for resubmission) and rejoins when it comes back. The tests run in order and share the pool.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_MODELS, startFakeComfy } from "../fake-comfyui/server.mjs";
import { connectV1, connectV2 } from "./clients.mjs";
import { startGateway } from "./gateway.mjs";
import { backendKilledUnderLoad } from "./reliability-scenarios.mjs";

const ONLY_ON_C = "only-on-c.safetensors";
/** Per sampler step: a job of `steps: 2` is ~40 ms, `steps: 150` ~3 s, `steps: 200` ~4 s. */
const STEP_MS = 20;
const FAST = { width: 64, height: 64, steps: 2 };
const TERMINAL = ["completed", "failed", "cancelled", "lost"];
const NAMES = ["a", "b", "c"];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (result) => result?.content?.find((c) => c.type === "text")?.text ?? "";
const brief = (value) => JSON.stringify(value)?.slice(0, 1500);

/** @type {Record<string, import("../fake-comfyui/server.mjs").FakeComfy>} */
const fakes = {};
let gateway;
let client;

beforeAll(async () => {
  fakes.a = await startFakeComfy({ port: 0, stepDelayMs: STEP_MS });
  fakes.b = await startFakeComfy({ port: 0, stepDelayMs: STEP_MS });
  fakes.c = await startFakeComfy({
    port: 0,
    stepDelayMs: STEP_MS,
    models: { checkpoints: [ONLY_ON_C, ...DEFAULT_MODELS.checkpoints] },
  });
  gateway = await startGateway({
    comfyUrl: fakes.a.url,
    vars: {
      COMFYUI_BACKENDS: JSON.stringify(NAMES.map((name) => ({ name, url: fakes[name].url }))),
      COMFY_MCP_HEALTH_SECONDS: "1",
      COMFY_MCP_BACKEND_GRACE_SECONDS: "2",
      COMFY_MCP_WAIT_SECONDS: "30",
    },
  });
  client = await connectV2(gateway.mcpUrl);
});

afterAll(async () => {
  await client?.close().catch(() => undefined);
  await gateway?.stop();
  await Promise.all(Object.values(fakes).map((fake) => fake.close().catch(() => undefined)));
});

afterEach(({ task }) => {
  if (task.result?.state === "fail" && gateway)
    console.error(`gateway log tail (${task.name}):\n${gateway.logs().slice(-4000)}`);
});

// ---- helpers ------------------------------------------------------------------------------------

/** Calls a tool that must succeed; a tool error fails the test with the tool's own text. */
async function ok(name, args = {}, options = {}) {
  const result = await client.call(name, args, options);
  if (result.isError) throw new Error(`${name}(${brief(args)}) answered isError: ${text(result)}`);
  return result.structuredContent;
}

/** Calls a tool that must fail; returns its text. */
async function refused(name, args) {
  const result = await client.call(name, args);
  expect(result.isError, `${name}(${brief(args)}) should be refused, got ${brief(result.structuredContent)}`).toBe(
    true,
  );
  return text(result);
}

/** Polls `probe` (→ [done, seen]) until done or `boundMs`; fails with what it saw last. */
async function until(what, boundMs, probe) {
  const started = Date.now();
  let seen;
  while (Date.now() - started < boundMs) {
    const [done, last] = await probe();
    seen = last;
    if (done) return { ms: Date.now() - started, seen };
    await sleep(200);
  }
  throw new Error(`${what}: not reached within ${boundMs} ms; last seen: ${brief(seen)}`);
}

/** list_backends as name → entry. */
async function backends() {
  const listed = await ok("list_backends");
  expect(Array.isArray(listed?.backends), `list_backends structuredContent.backends: ${brief(listed)}`).toBe(true);
  return Object.fromEntries(listed.backends.map((b) => [b.name, b]));
}

/** get_job with waits until the job is terminal or `boundMs` passes; returns the last job. */
async function waitJob(jobId, boundMs = 30_000) {
  const deadline = Date.now() + boundMs;
  let job;
  while (Date.now() < deadline) {
    const wait = Math.max(0, Math.min(20, Math.floor((deadline - Date.now()) / 1000) - 1));
    job = await ok("get_job", { prompt_id: jobId, wait_seconds: wait }, { timeout: 40_000 });
    if (TERMINAL.includes(job.status)) return job;
    if (wait < 1) await sleep(200);
  }
  return job;
}

/** Waits until the fake has a prompt in `running` (its executor is busy). */
async function untilBusy(name, boundMs = 10_000) {
  await until(`fake ${name} running a prompt`, boundMs, () => {
    const statuses = [...fakes[name].prompts.values()].map((p) => p.status);
    return [statuses.includes("running"), statuses];
  });
}

/**
 * Starts a slow job pinned to each named backend and waits until they run and list_backends
 * counts them (from the health check or from what the gateway just routed); returns the jobs.
 */
async function keepBusy(names, steps) {
  const jobs = [];
  for (const name of names)
    jobs.push(
      await ok("generate_image", { prompt: `keep ${name} busy`, ...FAST, steps, backend: name, wait_seconds: 0 }),
    );
  for (const name of names) await untilBusy(name);
  await until(`list_backends shows ${names.join(", ")} with a queue`, 5_000, async () => {
    const all = await backends();
    return [
      names.every((name) => all[name].queue_remaining >= 1),
      Object.values(all).map((b) => [b.name, b.queue_remaining]),
    ];
  });
  return jobs;
}

/** A job that must have completed, on `backend` when given; checks the result and its first asset. */
function expectCompleted(job, backend, what) {
  expect(job?.status, `${what}: ${brief(job)}`).toBe("completed");
  expect(job.assets?.length, `${what}: assets of ${brief(job)}`).toBeGreaterThan(0);
  if (backend) {
    expect(job.backend, `${what}: structuredContent.backend`).toBe(backend);
    expect(job.assets[0].backend, `${what}: assets[0].backend`).toBe(backend);
  }
}

// ---- tests --------------------------------------------------------------------------------------

describe("backend pool", () => {
  it("list_backends shows a, b and c up, each with its models (the special checkpoint only under c)", async () => {
    const { seen } = await until("all three backends up", 20_000, async () => {
      const all = await backends();
      return [NAMES.every((name) => all[name]?.state === "up"), all];
    });
    expect(Object.keys(seen).sort(), "backend names").toEqual(NAMES);
    for (const name of NAMES) {
      const b = seen[name];
      expect(b, `list_backends entry of ${name}`).toMatchObject({
        name,
        state: "up",
        weight: 1,
        tags: [],
        last_error: null,
        down_since: null,
      });
      expect(typeof b.last_checked_at, `${name}.last_checked_at`).toBe("string");
      expect(b.queue_remaining, `${name}.queue_remaining`).toBe(0);
      expect(b.models?.checkpoints, `${name}.models.checkpoints`).toEqual(
        expect.arrayContaining(DEFAULT_MODELS.checkpoints),
      );
      expect(
        b.models.checkpoints.includes(ONLY_ON_C),
        `${name} lists ${ONLY_ON_C}: ${brief(b.models.checkpoints)}`,
      ).toBe(name === "c");
    }
    // The 2025-era SDK sees the same pool.
    const v1 = await connectV1(gateway.mcpUrl);
    try {
      const listed = (await v1.call("list_backends")).structuredContent;
      expect(
        listed.backends.map((b) => b.name),
        "list_backends over SDK v1",
      ).toEqual(NAMES);
    } finally {
      await v1.close();
    }
  }, 60_000);

  it("get_queue_status lists all three backends with their state, and which one runs each prompt", async () => {
    const slow = await ok("generate_image", {
      prompt: "queue status",
      ...FAST,
      steps: 60,
      backend: "b",
      wait_seconds: 0,
    });
    await untilBusy("b");
    const queue = await ok("get_queue_status");
    expect(Array.isArray(queue.backends), `get_queue_status.backends: ${brief(queue)}`).toBe(true);
    const byName = Object.fromEntries(queue.backends.map((b) => [b.name, b]));
    expect(Object.keys(byName).sort(), "get_queue_status backend names").toEqual(NAMES);
    for (const name of NAMES)
      expect(byName[name], `get_queue_status entry of ${name}`).toMatchObject({ name, state: "up", error: null });
    expect(byName.b.running_count, `b.running_count: ${brief(byName.b)}`).toBeGreaterThanOrEqual(1);
    expect(byName.a.running_count + byName.c.running_count, "a and c are idle").toBe(0);
    const mine = queue.queue_running.find((entry) => entry.prompt_id === slow.prompt_id);
    expect(mine, `queue_running has the job ${slow.prompt_id}: ${brief(queue.queue_running)}`).toBeTruthy();
    expect(mine.backend, "queue_running entry's backend").toBe("b");
    expectCompleted(await waitJob(slow.job_id), "b", "the slow job pinned to b");
  }, 60_000);

  it("routes by model availability: a model only c has goes to c; a model nobody has is refused by name", async () => {
    const job = await ok("generate_image", { prompt: "special model", ...FAST, model: ONLY_ON_C });
    expectCompleted(job, "c", `generate_image with model ${ONLY_ON_C}`);
    expect(fakes.c.prompts.has(job.prompt_id), "fake c received the prompt").toBe(true);
    expect(fakes.a.prompts.has(job.prompt_id) || fakes.b.prompts.has(job.prompt_id), "fakes a and b did not").toBe(
      false,
    );
    const why = await refused("generate_image", {
      prompt: "missing model",
      ...FAST,
      model: "no-such-model.safetensors",
    });
    expect(why, "the refusal names the model").toContain("no-such-model.safetensors");
  }, 60_000);

  it("routes by queue length: with a and b busy, an unpinned job goes to c", async () => {
    const [slowA, slowB] = await keepBusy(["a", "b"], 150);
    for (let i = 0; i < 2; i++) {
      const job = await ok("generate_image", { prompt: `unpinned ${i}`, ...FAST });
      expectCompleted(job, "c", `unpinned job ${i} while a and b are busy`);
    }
    expectCompleted(await waitJob(slowA.job_id), "a", "the slow job pinned to a");
    expectCompleted(await waitJob(slowB.job_id), "b", "the slow job pinned to b");
  }, 60_000);

  it("a backend that cuts the submission: an unpinned job goes to another backend; a pinned one fails with the backend's error", async () => {
    const [slowA, slowB] = await keepBusy(["a", "b"], 60);
    fakes.c.setFaults({ dropPromptPosts: true });
    try {
      const job = await ok("generate_image", { prompt: "c cuts the line", ...FAST });
      expectCompleted(job, undefined, "a job whose first backend cut the submission");
      expect(["a", "b"], `it moved to ${job.backend}`).toContain(job.backend);
      expect(job.attempts, "its second submission is counted").toBe(2);
      const why = await refused("generate_image", { prompt: "pinned to c", ...FAST, backend: "c" });
      expect(why, "a pinned job fails with the backend's own error").toMatch(/not reachable|connection/i);
    } finally {
      fakes.c.setFaults({ dropPromptPosts: false });
    }
    expectCompleted(await waitJob(slowA.job_id), "a", "the slow job pinned to a");
    expectCompleted(await waitJob(slowB.job_id), "b", "the slow job pinned to b");
  }, 60_000);

  it("pins: backend 'b' runs on b; an unknown backend is refused with the names that exist", async () => {
    const job = await ok("generate_image", { prompt: "pinned to b", ...FAST, backend: "b" });
    expectCompleted(job, "b", "generate_image pinned to b");
    expect(fakes.b.prompts.has(job.prompt_id), "fake b received the prompt").toBe(true);
    const why = await refused("generate_image", { prompt: "pinned to nope", ...FAST, backend: "nope" });
    expect(why, "the refusal names the unknown backend").toContain("nope");
    for (const name of NAMES) expect(why, `the refusal lists backend '${name}'`).toMatch(new RegExp(`\\b${name}\\b`));
  }, 60_000);

  it("reads an asset back from the backend that made it: download_url, view_image, comfy://assets", async () => {
    const job = await ok("generate_image", { prompt: "made on c", width: 64, height: 48, steps: 2, backend: "c" });
    expectCompleted(job, "c", "generate_image pinned to c");
    const asset = job.assets[0];
    const query = new URLSearchParams({
      filename: asset.filename,
      subfolder: asset.subfolder,
      type: asset.folder_type,
    });
    const direct = await fetch(`${fakes.c.url}/view?${query}`);
    expect(direct.status, `fake c /view?${query}`).toBe(200);
    const expected = Buffer.from(await direct.arrayBuffer());
    for (const other of ["a", "b"]) {
      const response = await fetch(`${fakes[other].url}/view?${query}`);
      await response.arrayBuffer();
      expect(response.status, `fake ${other} must not have ${asset.subfolder}/${asset.filename}`).toBe(404);
    }

    const download = await fetch(asset.download_url);
    expect(download.status, `GET download_url ${asset.download_url}`).toBe(200);
    const got = Buffer.from(await download.arrayBuffer());
    expect(got.length, "download length").toBe(expected.length);
    expect(got.equals(expected), "download_url bytes equal fake c's file").toBe(true);

    const view = await client.call("view_image", { asset_id: asset.asset_id });
    expect(view.isError, `view_image: ${text(view)}`).toBeFalsy();
    expect(
      view.content.some((c) => c.type === "image" && c.data.length > 0),
      "view_image returns an inline image",
    ).toBe(true);

    const resource = await client.readResource(`comfy://assets/${asset.asset_id}`);
    const blob = Buffer.from(resource.contents[0].blob ?? "", "base64");
    expect(blob.equals(expected), "comfy://assets/<id> bytes equal fake c's file").toBe(true);
  }, 60_000);

  it("inputs stay near their asset: regenerate and image_to_image prefer its backend; elsewhere the image is copied over", async () => {
    const source = await ok("generate_image", { prompt: "source on c", width: 64, height: 48, steps: 2, backend: "c" });
    const again = await ok("regenerate", { asset_id: source.asset_id, param_overrides: { steps: 3 } });
    expectCompleted(again, "c", "regenerate of an asset made on c");
    const near = await ok("image_to_image", { image: source.asset_id, prompt: "same machine", steps: 2 });
    expectCompleted(near, "c", "image_to_image of an asset made on c");
    const loadNear = Object.values(fakes.c.prompts.get(near.prompt_id).prompt).find(
      (node) => node.class_type === "LoadImage",
    );
    expect(loadNear.inputs.image, "on its own backend the asset is read in place").toMatch(/\[output\]$/);

    const far = await ok("image_to_image", { image: source.asset_id, prompt: "other machine", steps: 2, backend: "a" });
    expectCompleted(far, "a", "image_to_image pinned to a with an asset made on c");
    const loadFar = Object.values(fakes.a.prompts.get(far.prompt_id).prompt).find(
      (node) => node.class_type === "LoadImage",
    );
    expect(loadFar.inputs.image, "on another backend the asset was uploaded there").toMatch(/^mcp\/[0-9a-f]{24}\.png$/);
    expect(far.width, "the copied input keeps its size").toBe(64);
    expect(far.height, "the copied input keeps its size").toBe(48);
  }, 60_000);

  it("a backend killed mid-run: its job is lost quickly, it shows down, others take new work, pinning to it is refused", async () => {
    const early = await ok("generate_image", { prompt: "made on a before it died", ...FAST, backend: "a" });
    expectCompleted(early, "a", "an asset made on a");
    const doomed = await ok("generate_image", {
      prompt: "doomed on a",
      ...FAST,
      steps: 200,
      backend: "a",
      wait_seconds: 0,
    });
    await untilBusy("a");
    // Queued behind the doomed job on a; asks to be moved if a goes away.
    const mover = await ok("generate_image", {
      prompt: "moves off a",
      ...FAST,
      backend: "a",
      resubmit_if_backend_lost: true,
      wait_seconds: 0,
    });
    expect(mover.backend, "the resubmittable job was first placed on a").toBe("a");
    await until("fake a holding the second job", 5_000, () => [
      fakes.a.prompts.has(mover.prompt_id),
      [...fakes.a.prompts.keys()],
    ]);

    const killedAt = Date.now();
    await fakes.a.close();

    // One get_job wait must come back with the terminal state, well before its own 20 s bound.
    const lost = await ok("get_job", { prompt_id: doomed.job_id, wait_seconds: 20 }, { timeout: 40_000 });
    const lostAfter = Date.now() - killedAt;
    expect(lost.status, `the job running on a when it died: ${brief(lost)}`).toBe("lost");
    expect(lost.error?.kind, `error of the lost job: ${brief(lost.error)}`).toBe("backend_down");
    expect(lost.backend, "the lost job's backend").toBe("a");
    expect(lostAfter, "declared lost within 15 s of the kill (grace 2 s)").toBeLessThan(15_000);

    await until("list_backends shows a down", 10_000, async () => {
      const all = await backends();
      return [all.a.state === "down", all.a];
    });
    const a = (await backends()).a;
    expect(typeof a.down_since, `a.down_since: ${brief(a)}`).toBe("string");
    expect(a.last_error, `a.last_error: ${brief(a)}`).toBeTruthy();

    const fresh = await Promise.all(
      [0, 1, 2].map((i) => ok("generate_image", { prompt: `after the kill ${i}`, ...FAST })),
    );
    for (const [i, job] of fresh.entries()) {
      expectCompleted(job, undefined, `unpinned job ${i} after a died`);
      expect(["b", "c"], `unpinned job ${i} ran on ${job.backend}`).toContain(job.backend);
    }

    const replay = await ok("regenerate", { asset_id: early.asset_id });
    expectCompleted(replay, undefined, "regenerate of an asset whose backend died");
    expect(["b", "c"], `regenerate re-routed to ${replay.backend}`).toContain(replay.backend);

    const why = await refused("generate_image", { prompt: "pinned to dead a", ...FAST, backend: "a" });
    expect(why, "the refusal names backend a").toMatch(/\ba\b/);
    expect(why, "the refusal says a is down").toMatch(/down|unreachable|not up/i);

    const moved = await waitJob(mover.job_id, 20_000);
    expect(moved?.status, `the job with resubmit_if_backend_lost: ${brief(moved)}`).toBe("completed");
    expect(["b", "c"], `the resubmitted job ran on ${moved.backend}`).toContain(moved.backend);
    expect(moved.assets[0].backend, "the resubmitted job's asset backend").toBe(moved.backend);
    expect(moved.attempts, "the resubmitted job counts its second submission").toBe(2);
  }, 60_000);

  it("a backend that comes back on the same port rejoins and takes pinned work again", async () => {
    const port = fakes.a.port;
    fakes.a = await startFakeComfy({ port, stepDelayMs: STEP_MS });
    const { ms } = await until("list_backends shows a up again", 10_000, async () => {
      const all = await backends();
      return [all.a.state === "up", all.a];
    });
    expect(ms, "rejoined within 10 s").toBeLessThan(10_000);
    const job = await ok("generate_image", { prompt: "back on a", ...FAST, backend: "a" });
    expectCompleted(job, "a", "generate_image pinned to the restarted a");
    expect(fakes.a.prompts.has(job.prompt_id), "the restarted fake a received the prompt").toBe(true);
  }, 60_000);

  it("a backend out of reach past the grace period but still working: its job is lost, then revived with its asset when it answers", async () => {
    const job = await ok("generate_image", {
      prompt: "finishes while unreachable",
      ...FAST,
      steps: 150,
      backend: "b",
      wait_seconds: 0,
    });
    await untilBusy("b");
    // The tunnel breaks (every HTTP answer is a 500, sockets dropped) while ComfyUI keeps rendering.
    fakes.b.setFaults({ http500: true, refuseWebSocket: true });
    fakes.b.dropSockets();
    const lost = await waitJob(job.job_id, 20_000);
    expect(lost?.status, `while b is out of reach: ${brief(lost)}`).toBe("lost");
    expect(lost.error?.kind, "error kind").toBe("backend_down");
    expect(lost.completed_via, "declared lost by the failover path").toBe("failover");
    await until("fake b finished the job anyway", 10_000, () => [
      fakes.b.finishTimes.has(job.prompt_id),
      fakes.b.prompts.get(job.prompt_id)?.status,
    ]);
    fakes.b.setFaults({ http500: false, refuseWebSocket: false });
    const { seen } = await until("the job revived as completed", 20_000, async () => {
      const current = await ok("get_job", { prompt_id: job.job_id });
      return [current.status === "completed", current];
    });
    expectCompleted(seen, "b", "the revived job");
    expect(seen, "a revived job carries no error").not.toHaveProperty("error");
    expect(seen.completed_via, "revived by the check of jobs lost with their backend").toBe("orphan_check");
  }, 60_000);
});

describe("failover under load", () => {
  it("30 concurrent jobs asking to be moved, one backend killed mid-batch: every job completes once, none on the dead backend after it died", async () => {
    const result = await backendKilledUnderLoad(
      { client, fakes, stepDelayMs: STEP_MS },
      { runs: 1, jobs: 30, victim: "b" },
    );
    expect({ passed: result.passed, lost: result.lost_items, notes: result.notes }).toEqual({
      passed: 1,
      lost: 0,
      notes: "",
    });
    expect(result.figures.jobs, "every job completed").toBe(30);
    expect(result.figures.moved, "some jobs were moved off b").toBeGreaterThan(0);
    console.log(
      `failover under load: ${result.figures.jobs} completed, ${result.figures.moved} moved off b; every call answered ${result.max_recovery_ms} ms after the kill`,
    );
  }, 90_000);
});

describe("a malformed pool", () => {
  it("is refused whole: /mcp and /healthz answer 503 naming the problem, without echoing credentials", async () => {
    const broken = await startGateway({
      comfyUrl: "http://127.0.0.1:9",
      vars: {
        COMFYUI_BACKENDS: JSON.stringify([
          { name: "a", url: "http://127.0.0.1:9", access_client_id: "id", access_client_secret: "hunter2-secret" },
          { name: "a", url: "http://127.0.0.1:10" },
        ]),
      },
      readyTimeoutMs: 60_000,
      readyStatus: 503,
    });
    try {
      const health = await fetch(`${broken.url}/healthz`);
      expect(health.status, "/healthz").toBe(503);
      const mcp = await fetch(broken.mcpUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }),
      });
      expect(mcp.status, "/mcp").toBe(503);
      const body = await mcp.text();
      expect(body, "names the problem").toMatch(/misconfigured.*'a' is used twice/s);
      expect(body, "never echoes a secret").not.toContain("hunter2");
    } finally {
      await broken.stop();
    }
  }, 90_000);
});
