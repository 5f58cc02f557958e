// Reliability scenarios (issue #7), end to end through `wrangler dev` against the fake ComfyUI:
// faults (dropped WebSocket, ComfyUI restarted / unreachable / 500 / slow / Access 302), a studio
// restart, a client that disconnects mid-wait, concurrent load by several users, and (issue #8)
// one backend of a pool killed in the middle of a burst.
// Shared by test/e2e/reliability.test.mjs (small N, inside `npm test`) and scripts/reliability.mjs
// (bigger N, prints the table). Every scenario returns
// { scenario, runs, passed, lost_items, max_recovery_ms, notes } and never throws for a failed
// check: failures are counted and described in `notes`.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { connectV2 } from "./clients.mjs";
import { startGateway } from "./gateway.mjs";

export const TERMINAL = ["completed", "failed", "cancelled", "lost"];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.timeOrigin + performance.now();
export const text = (result) => result?.content?.find((c) => c.type === "text")?.text ?? "";
const SMALL = { width: 64, height: 64 };

/** A token per user, long enough for MCP_TOKENS (≥ 16 characters). */
export const tokenFor = (user) => `tok_${user}_0123456789abcdef`;

/**
 * One fake ComfyUI + one gateway on a state directory of its own, with static tokens for `users`.
 * `harness.fake` and `harness.gateway` are replaced by the scenarios that restart them.
 */
export async function startHarness({ stepDelayMs = 30, nodeDelayMs = 1, users = ["u1"], waitSeconds = 30 } = {}) {
  const stateDir = mkdtempSync(join(tmpdir(), "comfyui-mcp-edge-reliability-"));
  const fake = await startFakeComfy({ port: 0, stepDelayMs, nodeDelayMs });
  const vars = {
    COMFY_MCP_WAIT_SECONDS: String(waitSeconds),
    MCP_TOKENS: users.map((u) => `${u}:${tokenFor(u)}`).join(","),
    DOWNLOAD_SIGNING_KEY: "reliability-signing-key",
  };
  let gateway;
  try {
    gateway = await startGateway({ comfyUrl: fake.url, persistDir: stateDir, vars });
  } catch (error) {
    await fake.close();
    rmSync(stateDir, { recursive: true, force: true });
    throw error;
  }
  const clients = new Set();
  const harness = {
    fake,
    gateway,
    stepDelayMs,
    nodeDelayMs,
    users,
    stateDir,
    vars,
    /** A new SDK v2 client on /mcp-key as `user`; closed by `stop()`. */
    async connect(user = users[0]) {
      const client = await connectV2(`${harness.gateway.url}/mcp-key`, { Authorization: `Bearer ${tokenFor(user)}` });
      clients.add(client);
      const close = client.close;
      client.close = async () => {
        clients.delete(client);
        await close().catch(() => undefined);
      };
      return client;
    },
    /** Kills wrangler dev (keeping its state) and starts it again on the same port and state. */
    async restartGateway() {
      for (const client of [...clients]) await client.close();
      const port = harness.gateway.port;
      await harness.gateway.stop({ keepState: true });
      harness.gateway = await startGateway({ comfyUrl: harness.fake.url, persistDir: stateDir, port, vars });
    },
    async stop() {
      for (const client of [...clients]) await client.close();
      await harness.gateway?.stop().catch(() => undefined);
      await harness.fake?.close().catch(() => undefined);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return harness;
}

/** A scenario tally. */
function tally(scenario) {
  const result = { scenario, runs: 0, passed: 0, lost_items: 0, max_recovery_ms: 0, notes: [] };
  return {
    result,
    run() {
      result.runs++;
    },
    pass() {
      result.passed++;
    },
    fail(note) {
      result.notes.push(note);
    },
    recovery(ms) {
      result.max_recovery_ms = Math.max(result.max_recovery_ms, Math.round(ms));
    },
    lost(n = 1) {
      result.lost_items += n;
    },
    done() {
      return { ...result, notes: result.notes.join("; ") };
    },
  };
}

/** get_job with waits until the job is terminal or `boundMs` passes; returns the last structuredContent. */
export async function waitJob(client, promptId, boundMs = 30_000) {
  const deadline = Date.now() + boundMs;
  let job;
  while (Date.now() < deadline) {
    const wait = Math.max(0, Math.min(20, (deadline - Date.now()) / 1000 - 1));
    const result = await client.call(
      "get_job",
      { prompt_id: promptId, wait_seconds: Math.floor(wait * 10) / 10 },
      { timeout: 30_000 },
    );
    if (result.isError) throw new Error(`get_job failed: ${text(result)}`);
    job = result.structuredContent;
    if (TERMINAL.includes(job.status)) return job;
    if (wait < 1) await sleep(200);
  }
  return job;
}

/** Every asset of the user's studio (list_assets pages, newest first). */
export async function allAssets(client) {
  const assets = [];
  let cursor;
  for (let page = 0; page < 50; page++) {
    const result = await client.call("list_assets", { limit: 100, ...(cursor ? { cursor } : {}) });
    if (result.isError) throw new Error(`list_assets failed: ${text(result)}`);
    assets.push(...result.structuredContent.assets);
    cursor = result.structuredContent.next_cursor;
    if (!cursor) break;
  }
  return assets;
}

/** Checks a completed job has exactly one asset, listed exactly once. Returns a problem or null. */
function checkOneAsset(job, listed) {
  if (job?.status !== "completed")
    return `job ${job?.prompt_id} ended ${job?.status ?? "unknown"}: ${job?.message ?? ""}`;
  if (job.assets.length !== 1) return `job ${job.prompt_id} has ${job.assets.length} assets`;
  const mine = listed.filter((a) => a.job_id === job.job_id);
  if (mine.length !== 1) return `job ${job.prompt_id} is listed ${mine.length} times by list_assets`;
  if (mine[0].asset_id !== job.assets[0].asset_id) return `job ${job.prompt_id}: list_assets shows another asset id`;
  return null;
}

async function healthz(harness, boundMs = 10_000) {
  const started = Date.now();
  const response = await fetch(`${harness.gateway.url}/healthz`, { signal: AbortSignal.timeout(boundMs) });
  const body = await response.json();
  return { ok: response.ok && body.ok === true, body, ms: Date.now() - started };
}

/** Waits until the fake's prompt is running (or anything terminal). */
async function untilRunning(fake, promptId, boundMs = 10_000) {
  const deadline = Date.now() + boundMs;
  while (Date.now() < deadline) {
    const status = fake.prompts.get(promptId)?.status;
    if (status && status !== "pending") return status;
    await sleep(20);
  }
  return fake.prompts.get(promptId)?.status;
}

// ---------------------------------------------------------------------------------------------
// 1. WebSocket dropped mid-job, several times.
export async function websocketDrops(harness, { jobs = 3, steps = 12 } = {}) {
  const t = tally("WebSocket dropped mid-job");
  const client = await harness.connect();
  try {
    const done = [];
    for (let i = 0; i < jobs; i++) {
      t.run();
      harness.fake.setFaults({ dropSocketsAfterEvents: 3 });
      const started = Date.now();
      try {
        const submitted = await client.call("generate_image", {
          prompt: `drop ${i}`,
          ...SMALL,
          steps,
          wait_seconds: 0,
        });
        if (submitted.isError) throw new Error(`submit: ${text(submitted)}`);
        const job = await waitJob(client, submitted.structuredContent.prompt_id, 30_000);
        t.recovery(Date.now() - started);
        if (job?.status !== "completed") {
          t.lost();
          t.fail(`job ${i} ${job?.status}: ${job?.message}`);
          continue;
        }
        done.push(job);
      } catch (error) {
        t.lost();
        t.fail(`job ${i}: ${error.message}`);
      }
    }
    const listed = await allAssets(client);
    for (const job of done) {
      const problem = checkOneAsset(job, listed);
      if (problem) {
        t.lost();
        t.fail(problem);
      } else t.pass();
    }
  } finally {
    harness.fake.setFaults({ dropSocketsAfterEvents: 0 });
    await client.close();
  }
  const r = t.done();
  r.notes ||= "recovery = submit → get_job completed";
  return r;
}

// ---------------------------------------------------------------------------------------------
// 2. ComfyUI restarted mid-job: the job is reported lost (bounded), new jobs work.
export async function comfyRestart(harness, { runs = 1, boundMs = 20_000 } = {}) {
  const t = tally("ComfyUI restarted mid-job");
  const client = await harness.connect();
  try {
    for (let i = 0; i < runs; i++) {
      t.run();
      try {
        const submitted = await client.call("generate_image", {
          prompt: `restart ${i}`,
          ...SMALL,
          steps: 200,
          wait_seconds: 0,
        });
        if (submitted.isError) throw new Error(`submit: ${text(submitted)}`);
        const promptId = submitted.structuredContent.prompt_id;
        if ((await untilRunning(harness.fake, promptId)) !== "running")
          throw new Error("the job never started running");
        await sleep(100);
        harness.fake.restart();
        const restartedAt = Date.now();
        const job = await waitJob(client, promptId, boundMs);
        const recovery = Date.now() - restartedAt;
        t.recovery(recovery);
        if (job?.status !== "lost")
          throw new Error(`after the restart the job is ${job?.status}, not lost (${recovery} ms)`);
        if (!/restart/i.test(job.message ?? "") || !/restart/i.test(job.error?.message ?? ""))
          throw new Error(`lost without saying ComfyUI restarted: ${job.message}`);
        const again = await client.call("generate_image", { prompt: `after restart ${i}`, ...SMALL, steps: 2 });
        if (again.structuredContent?.status !== "completed" || again.structuredContent.assets.length !== 1) {
          t.lost();
          throw new Error(`the job after the restart: ${again.structuredContent?.status ?? text(again)}`);
        }
        t.pass();
      } catch (error) {
        t.fail(`run ${i}: ${error.message}`);
      }
    }
  } finally {
    await client.close();
  }
  const r = t.done();
  r.notes ||= "recovery = restart → job reported lost";
  return r;
}

// ---------------------------------------------------------------------------------------------
// 3. ComfyUI unreachable, 500s, slow beyond timeouts, Access 302.
const FAULTS = {
  unreachable: null, // handled specially: close the fake, start a new one on the same port
  http500: { http500: true },
  slow: { slowMs: 4_000 }, // beyond /healthz's 3 s probe; the tools' 15 s timeout still holds
  accessRedirect: { accessRedirect: true },
  accessHtml200: { accessHtml200: true },
};

export async function comfyFaults(harness, { kinds = Object.keys(FAULTS), callBoundMs = 25_000, rounds = 1 } = {}) {
  const t = tally("ComfyUI unreachable / 500 / slow / Access");
  const client = await harness.connect();
  const problems = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const kind of kinds) {
        t.run();
        const issues = [];
        try {
          if (kind === "unreachable") await harness.fake.close();
          else harness.fake.setFaults(FAULTS[kind]);
          // Every call answers within the bound, with a clear error (the slow fault may also succeed).
          for (const [name, args] of [
            ["list_models", {}],
            ["generate_image", { prompt: `fault ${kind}`, ...SMALL, steps: 2, wait_seconds: 5 }],
          ]) {
            const started = Date.now();
            let result;
            try {
              result = await client.call(name, args, { timeout: callBoundMs });
            } catch (error) {
              issues.push(`${name} under ${kind} threw after ${Date.now() - started} ms: ${error.message}`);
              continue;
            }
            const ms = Date.now() - started;
            if (ms > callBoundMs) issues.push(`${name} under ${kind} took ${ms} ms`);
            if (kind === "slow" && !result.isError) continue;
            if (kind === "slow" && name === "generate_image" && result.structuredContent) continue;
            if (!result.isError) issues.push(`${name} under ${kind} did not fail: ${text(result).slice(0, 120)}`);
            else if (text(result).length < 20 || /internal error/i.test(text(result)))
              issues.push(`${name} under ${kind}: unclear error '${text(result)}'`);
            else if (kind === "unreachable" && !/not reachable/i.test(text(result)))
              issues.push(`unreachable: '${text(result).slice(0, 160)}'`);
            else if (kind.startsWith("access") && !/Cloudflare Access/i.test(text(result)))
              issues.push(`${kind}: '${text(result).slice(0, 160)}'`);
          }
          const health = await healthz(harness).catch((error) => ({
            ok: false,
            body: { error: error.message },
            ms: -1,
          }));
          if (!health.ok || health.ms > 10_000)
            issues.push(`/healthz under ${kind}: ${JSON.stringify(health.body)} in ${health.ms} ms`);
          else if (health.body.comfyui?.reachable !== false && kind !== "slow")
            issues.push(`/healthz says ComfyUI is reachable under ${kind}`);
        } finally {
          // Clear the fault, then time the first generation that works again.
          if (kind === "unreachable")
            harness.fake = await startFakeComfy({
              port: harness.fake.port,
              stepDelayMs: harness.stepDelayMs,
              nodeDelayMs: harness.nodeDelayMs,
            });
          else harness.fake.setFaults({ http500: false, slowMs: 0, accessRedirect: false, accessHtml200: false });
        }
        const cleared = Date.now();
        let recovered = false;
        while (Date.now() - cleared < 30_000) {
          const result = await client
            .call("generate_image", { prompt: `after ${kind}`, ...SMALL, steps: 2 }, { timeout: 40_000 })
            .catch((error) => ({ isError: true, error }));
          if (result.structuredContent?.status === "completed" && result.structuredContent.assets.length === 1) {
            recovered = true;
            break;
          }
          await sleep(250);
        }
        t.recovery(Date.now() - cleared);
        if (!recovered) {
          issues.push(`no generation works within 30 s after ${kind} cleared`);
          t.lost();
        }
        if (issues.length === 0) t.pass();
        else problems.push(...issues);
      }
    }
  } finally {
    await client.close();
  }
  const r = t.done();
  r.notes =
    problems.length > 0 ? problems.join("; ") : `${kinds.join(", ")}; recovery = fault cleared → generation completed`;
  return r;
}

// ---------------------------------------------------------------------------------------------
// 4. Studio (wrangler dev) restarted mid-job: completes afterwards, registered once.
export async function studioRestart(harness, { runs = 1 } = {}) {
  const t = tally("Studio restarted mid-job");
  for (let i = 0; i < runs; i++) {
    t.run();
    let client = await harness.connect();
    try {
      const submitted = await client.call("generate_image", {
        prompt: `studio restart ${i}`,
        ...SMALL,
        steps: 200,
        wait_seconds: 0,
      });
      if (submitted.isError) throw new Error(`submit: ${text(submitted)}`);
      const promptId = submitted.structuredContent.prompt_id;
      await untilRunning(harness.fake, promptId);
      const stoppedAt = Date.now();
      await harness.restartGateway();
      const finishedWhileDown = harness.fake.prompts.get(promptId)?.status === "success";
      client = await harness.connect();
      const job = await waitJob(client, promptId, 30_000);
      t.recovery(Date.now() - stoppedAt);
      const problem = checkOneAsset(job, await allAssets(client));
      if (problem) {
        t.lost();
        throw new Error(problem);
      }
      // Asking again must not register anything twice.
      const again = (await client.call("get_job", { prompt_id: promptId })).structuredContent;
      if (again.assets.map((a) => a.asset_id).join() !== job.assets.map((a) => a.asset_id).join())
        throw new Error("get_job again shows other assets");
      t.pass();
      if (finishedWhileDown) t.result.notes.push(`run ${i}: job finished while the gateway was down`);
    } catch (error) {
      t.fail(`run ${i}: ${error.message}`);
    } finally {
      await client.close();
    }
  }
  const r = t.done();
  r.notes ||= "recovery = gateway stop → job completed";
  return r;
}

// ---------------------------------------------------------------------------------------------
// 5. A client that disconnects mid-wait: the job still completes and is findable.
export async function clientDisconnect(harness, { runs = 2, abortAfterMs = 300 } = {}) {
  const t = tally("Client disconnects mid-wait");
  for (let i = 0; i < runs; i++) {
    t.run();
    const how = i % 2 === 0 ? "abort" : "close";
    const before = new Set(harness.fake.prompts.keys());
    const first = await harness.connect();
    let second;
    try {
      const controller = new AbortController();
      const call = first
        .call(
          "generate_image",
          { prompt: `disconnect ${i}`, ...SMALL, steps: 40, wait_seconds: 30 },
          { signal: controller.signal },
        )
        .then(
          (result) => ({ result }),
          (error) => ({ error }),
        );
      await sleep(abortAfterMs);
      if (how === "abort") controller.abort();
      else await first.close();
      const outcome = await Promise.race([call, sleep(5_000).then(() => ({ hung: true }))]);
      if (outcome.result?.structuredContent?.status === "completed")
        t.result.notes.push(`run ${i}: the call finished before the ${how}`);
      // The fake saw the submission: find it, then ask from a new client.
      let promptId;
      for (let k = 0; k < 50 && !promptId; k++) {
        promptId = [...harness.fake.prompts.keys()].find((id) => !before.has(id));
        if (!promptId) await sleep(50);
      }
      if (!promptId) throw new Error("ComfyUI never received the job");
      second = await harness.connect();
      const job = await waitJob(second, promptId, 30_000);
      const problem = checkOneAsset(job, await allAssets(second));
      if (problem) {
        t.lost();
        throw new Error(`${how}: ${problem}`);
      }
      t.pass();
    } catch (error) {
      t.fail(`run ${i} (${how}): ${error.message}`);
    } finally {
      await first.close();
      await second?.close();
    }
  }
  const r = t.done();
  r.notes ||= "alternating AbortController abort / client close";
  return r;
}

// ---------------------------------------------------------------------------------------------
// 6. Load: N users × M concurrent generations.
const percentile = (values, p) => {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
};

export async function load(harness, { users = harness.users, perUser = 6, steps = 1 } = {}) {
  const t = tally(`Load ${users.length} users × ${perUser} concurrent`);
  const clients = await Promise.all(users.map((user) => harness.connect(user)));
  // Assets from earlier scenarios are left out of the checks below.
  const earlier = await Promise.all(
    clients.map(async (client) => new Set((await allAssets(client)).map((a) => a.asset_id))),
  );
  const callLatency = [];
  const noticeLatency = [];
  const startedAt = Date.now();
  const outcomes = await Promise.all(
    users.flatMap((user, u) =>
      Array.from({ length: perUser }, async (_, j) => {
        const sent = now();
        try {
          const result = await clients[u].call(
            "generate_image",
            { prompt: `load ${user} ${j}`, width: 64, height: 64, steps },
            { timeout: 120_000 },
          );
          const received = now();
          callLatency.push(received - sent);
          const job = result.structuredContent;
          const finished = job?.prompt_id ? harness.fake.finishTimes.get(job.prompt_id) : undefined;
          if (finished !== undefined) noticeLatency.push(received - finished);
          return { user, job, error: result.isError ? text(result) : undefined };
        } catch (error) {
          return { user, error: error.message };
        }
      }),
    ),
  );
  const wallMs = Date.now() - startedAt;
  // Anything still open (the wait ran out) is finished with get_job.
  for (const outcome of outcomes) {
    if (outcome.job && !TERMINAL.includes(outcome.job.status)) {
      outcome.job = await waitJob(clients[users.indexOf(outcome.user)], outcome.job.prompt_id, 60_000).catch(
        () => outcome.job,
      );
    }
  }
  const allIds = new Set();
  for (const [u, user] of users.entries()) {
    const mine = outcomes.filter((o) => o.user === user);
    t.run();
    const issues = [];
    let listed = [];
    try {
      listed = (await allAssets(clients[u])).filter((a) => !earlier[u].has(a.asset_id));
    } catch (error) {
      issues.push(error.message);
    }
    for (const o of mine) {
      const problem = o.error ? `${user}: ${o.error}` : checkOneAsset(o.job, listed);
      if (problem) {
        t.lost();
        issues.push(problem);
        continue;
      }
      if (allIds.has(o.job.assets[0].asset_id)) issues.push(`duplicated asset id ${o.job.assets[0].asset_id}`);
      allIds.add(o.job.assets[0].asset_id);
    }
    // No leakage: the list is exactly this user's jobs.
    const ownJobs = new Set(mine.filter((o) => o.job).map((o) => o.job.job_id));
    const foreign = listed.filter((a) => !ownJobs.has(a.job_id));
    if (foreign.length > 0) issues.push(`${user} lists ${foreign.length} assets that are not its own`);
    // Ordering: newest first by created_at, and consistent with ComfyUI's finish order.
    for (let k = 1; k < listed.length; k++) {
      if (listed[k - 1].created_at < listed[k].created_at) {
        issues.push(`${user}: list_assets not newest-first at ${k}`);
        break;
      }
    }
    // Pairs listed against ComfyUI's finish order: with distinct created_at (a real inversion) or tied.
    const fin = (a) => harness.fake.finishTimes.get(a.prompt_id) ?? 0;
    let inverted = 0;
    let tiedInverted = 0;
    for (let x = 0; x < listed.length; x++) {
      for (let y = x + 1; y < listed.length; y++) {
        if (fin(listed[x]) >= fin(listed[y])) continue;
        if (listed[x].created_at === listed[y].created_at) tiedInverted++;
        else inverted++;
      }
    }
    const ties = listed.length - new Set(listed.map((a) => a.created_at)).size;
    // Assets carry ComfyUI's own completion time, so the list follows the GPU's finish order.
    if (inverted > 0)
      issues.push(`${user}: ${inverted} pairs listed against ComfyUI's finish order with distinct created_at`);
    if (tiedInverted > 0)
      t.result.notes.push(
        `${user}: ${ties} created_at ties; ${tiedInverted} tied pairs listed against finish order (ties broken by random asset id)`,
      );
    // Another user's job is not visible.
    const other = outcomes.find((o) => o.user !== user && o.job?.prompt_id);
    if (other) {
      const peek = await clients[u].call("get_job", { prompt_id: other.job.prompt_id });
      if (!peek.isError && peek.structuredContent?.status) issues.push(`${user} can read ${other.user}'s job`);
    }
    if (issues.length === 0) t.pass();
    else t.fail(issues.slice(0, 5).join("; "));
  }
  for (const client of clients) await client.close();
  const r = t.done();
  const jobs = outcomes.length;
  r.figures = {
    users: users.length,
    per_user: perUser,
    jobs,
    wall_ms: wallMs,
    throughput_jobs_per_s: Number((jobs / (wallMs / 1000)).toFixed(2)),
    call_p50_ms: Math.round(percentile(callLatency, 50)),
    call_p99_ms: Math.round(percentile(callLatency, 99)),
    notice_p50_ms: Math.round(percentile(noticeLatency, 50)),
    notice_p99_ms: Math.round(percentile(noticeLatency, 99)),
    notices_measured: noticeLatency.length,
  };
  return r;
}

// ---------------------------------------------------------------------------------------------
// 8. A pool of backends (issue #8): one killed in the middle of a burst.

/** Three fake ComfyUIs behind one gateway (COMFYUI_BACKENDS), with an SDK v2 client on /mcp. */
export async function startPoolHarness({ names = ["a", "b", "c"], stepDelayMs = 20, vars = {} } = {}) {
  const fakes = {};
  for (const name of names) fakes[name] = await startFakeComfy({ port: 0, stepDelayMs });
  const pool = { fakes, stepDelayMs, gateway: undefined, client: undefined };
  pool.stop = async () => {
    await pool.client?.close().catch(() => undefined);
    await pool.gateway?.stop().catch(() => undefined);
    await Promise.all(Object.values(fakes).map((fake) => fake.close().catch(() => undefined)));
  };
  try {
    pool.gateway = await startGateway({
      comfyUrl: fakes[names[0]].url,
      vars: {
        COMFYUI_BACKENDS: JSON.stringify(names.map((name) => ({ name, url: fakes[name].url }))),
        COMFY_MCP_HEALTH_SECONDS: "1",
        COMFY_MCP_BACKEND_GRACE_SECONDS: "2",
        COMFY_MCP_WAIT_SECONDS: "30",
        ...vars,
      },
    });
    pool.client = await connectV2(pool.gateway.mcpUrl);
  } catch (error) {
    await pool.stop();
    throw error;
  }
  return pool;
}

/**
 * `jobs` concurrent generate_image calls with resubmit_if_backend_lost; the victim is killed once
 * it runs one of them. Every job must complete exactly once (one asset, listed once), none may
 * report the victim unless it finished there before dying, and moved jobs count their attempts.
 * Recovery = kill → every call answered. The victim comes back on its port before the next run.
 */
export async function backendKilledUnderLoad(pool, { runs = 1, jobs = 30, victim = "b", steps = 20 } = {}) {
  const t = tally(`Backend killed under load (${Object.keys(pool.fakes).length} backends, ${jobs} jobs)`);
  const figures = { jobs: 0, moved: 0 };
  for (let i = 0; i < runs; i++) {
    t.run();
    const problems = [];
    const calls = Array.from({ length: jobs }, (_, n) =>
      pool.client.call(
        "generate_image",
        {
          ...SMALL,
          prompt: `burst ${i}.${n}`,
          steps,
          seed: 9000 + n,
          resubmit_if_backend_lost: true,
          wait_seconds: 30,
        },
        { timeout: 90_000 },
      ),
    );
    const killed = pool.fakes[victim];
    const deadline = Date.now() + 10_000;
    while (![...killed.prompts.values()].some((p) => p.status === "running") && Date.now() < deadline) await sleep(20);
    const finishedBefore = new Set(killed.finishTimes.keys());
    const killedAt = now();
    await killed.close();
    const results = await Promise.all(calls);
    t.recovery(now() - killedAt);
    const listed = await allAssets(pool.client);
    for (const result of results) {
      const job = result.structuredContent;
      const problem = result.isError ? `isError: ${text(result).slice(0, 200)}` : checkOneAsset(job, listed);
      if (problem) {
        problems.push(problem);
        t.lost();
        continue;
      }
      if (job.backend === victim && !finishedBefore.has(job.prompt_id))
        problems.push(`job ${job.job_id} reports ${victim} after it died`);
      if (job.attempts > 1) figures.moved++;
      figures.jobs++;
    }
    pool.fakes[victim] = await startFakeComfy({ port: killed.port, stepDelayMs: pool.stepDelayMs });
    const back = Date.now() + 15_000;
    for (;;) {
      const listedBackends = (await pool.client.call("list_backends")).structuredContent?.backends ?? [];
      if (listedBackends.find((b) => b.name === victim)?.state === "up") break;
      if (Date.now() > back) {
        problems.push(`${victim} did not rejoin within 15 s`);
        break;
      }
      await sleep(200);
    }
    if (problems.length === 0) t.pass();
    else t.fail(`run ${i + 1}: ${problems.slice(0, 3).join("; ")}`);
  }
  const result = t.done();
  result.figures = figures;
  return result;
}

/** The markdown table of scenario results. */
export function table(results) {
  const lines = ["| scenario | runs | passed | lost items | max recovery ms |", "|---|---:|---:|---:|---:|"];
  for (const r of results)
    lines.push(`| ${r.scenario} | ${r.runs} | ${r.passed} | ${r.lost_items} | ${r.max_recovery_ms} |`);
  return lines.join("\n");
}
