// Reliability scenarios (issue #7), end to end through `wrangler dev` against the fake ComfyUI:
// faults (dropped WebSocket, ComfyUI restarted / unreachable / 500 / slow / Access 302), a studio
// restart, a client that disconnects mid-wait, concurrent load by several users, and (issue #8)
// one backend of a pool killed in the middle of a burst.
// Shared by test/e2e/reliability.test.mjs (small N, inside `npm test`) and scripts/reliability.mjs
// (bigger N, prints the table; it also runs the soak of test/e2e/soak.mjs). Every scenario returns
// { scenario, timings, runs, passed, lost_items, faults_fired, crashes, max_recovery_ms, notes } and
// never throws for a failed check: failures are counted and described in `notes`.
// A run passes only when the fault it injects really fired (a scenario whose fault never happened
// proves nothing), every completed job's asset has bytes and the requested size, and the gateway
// neither answered with runTool's catch-all error nor logged "tool failed unexpectedly".
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { connectV2 } from "./clients.mjs";
import { startGateway } from "./gateway.mjs";

export const TERMINAL = ["completed", "failed", "cancelled", "lost"];
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const now = () => performance.timeOrigin + performance.now();
export const text = (result) => result?.content?.find((c) => c.type === "text")?.text ?? "";
const SMALL = { width: 64, height: 64 };

/** runTool's answer to an exception it did not expect (src/tools/run.ts): a crash, not a clear error. */
export const CATCH_ALL = /gateway hit an unexpected error while running this tool/i;
/** What runTool logs with console.error for such a crash (it reaches wrangler's output at --log-level warn). */
export const CRASH_LOG = "tool failed unexpectedly";
/** The gateway log lines of crashes the catch-all covered for. */
export const crashLines = (gateway) =>
  (gateway?.logs() ?? "").split(/\r?\n/).filter((line) => line.includes(CRASH_LOG));
/** A tool error that is a crash rather than a clear message, or null. */
export function unclearError(result) {
  const said = text(result);
  if (!result?.isError) return null;
  if (CATCH_ALL.test(said) || /internal error/i.test(said) || said.length < 20) return said || "(no text)";
  return null;
}

/** The timings the gateway runs with in these scenarios (test/e2e/gateway.mjs sets reconcile 1 s). */
export const FAST_TIMINGS = "reconcile 1 s";
/** The gateway's production defaults (src/config.ts). */
export const DEFAULT_TIMINGS = "defaults: reconcile 5 s, health 10 s, grace 30 s";
export const DEFAULT_VARS = { COMFY_MCP_RECONCILE_SECONDS: "5" };

/** A token per user, long enough for MCP_TOKENS (≥ 16 characters). */
export const tokenFor = (user) => `tok_${user}_0123456789abcdef`;

/**
 * The fake's fault counters: `fake.faultsFired` (dropSockets, http500, slow, accessRedirect, …) when
 * the fake counts them; always `ws_upgrade_attempts` and `sockets` from its /__fake/state.
 */
export async function faultCounters(fake) {
  const state = await fetch(`${fake.url}/__fake/state`, { signal: AbortSignal.timeout(5_000) })
    .then((response) => response.json())
    .catch(() => ({}));
  const fired = fake.faultsFired ?? state.faults_fired;
  return {
    fired: fired ? { ...fired } : null,
    ws_upgrade_attempts: state.ws_upgrade_attempts ?? 0,
    sockets: state.sockets?.length ?? 0,
  };
}

/** How many times `key` fired between two faultCounters() readings; undefined if the fake does not count it. */
export function firedBetween(before, after, key) {
  if (!before?.fired || !after?.fired || !(key in after.fired)) return undefined;
  return after.fired[key] - (before.fired[key] ?? 0);
}

/** Sum of every backend's list_backends last_hour (reconnects, socket drops, completions by path). */
export async function lastHour(client) {
  const result = await client.call("list_backends");
  const sum = { reconnects: 0, socket_drops: 0, completions: {} };
  for (const backend of result.structuredContent?.backends ?? []) {
    const h = backend.last_hour;
    if (!h) continue;
    sum.reconnects += h.reconnects;
    sum.socket_drops += h.socket_drops;
    for (const [path, n] of Object.entries(h.completions ?? {}))
      sum.completions[path] = (sum.completions[path] ?? 0) + n;
  }
  return sum;
}

/**
 * One fake ComfyUI + one gateway on a state directory of its own, with static tokens for `users`.
 * `harness.fake` and `harness.gateway` are replaced by the scenarios that restart them; the crash
 * lines of every gateway it ran are kept (`harness.crashes()`). `vars` override the gateway's.
 */
export async function startHarness({
  stepDelayMs = 30,
  nodeDelayMs = 1,
  users = ["u1"],
  waitSeconds = 30,
  vars: extraVars = {},
  fakeOptions = {},
} = {}) {
  const stateDir = mkdtempSync(join(tmpdir(), "comfyui-mcp-edge-reliability-"));
  const fake = await startFakeComfy({ port: 0, stepDelayMs, nodeDelayMs, ...fakeOptions });
  const vars = {
    COMFY_MCP_WAIT_SECONDS: String(waitSeconds),
    MCP_TOKENS: users.map((u) => `${u}:${tokenFor(u)}`).join(","),
    DOWNLOAD_SIGNING_KEY: "reliability-signing-key",
    // The users here are load, not guests: the per-user limits (issue #13) would refuse it.
    ...Object.fromEntries(
      ["OPEN_JOBS", "JOBS_PER_MINUTE", "MEGAPIXELS", "VIDEO_MEGAPIXEL_FRAMES", "STEPS", "INPUT_IMAGE_SIDE"].map(
        (limit) => [`COMFY_MCP_USER_MAX_${limit}`, "unlimited"],
      ),
    ),
    ...extraVars,
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
  const earlierCrashes = [];
  const harness = {
    fake,
    gateway,
    stepDelayMs,
    nodeDelayMs,
    fakeOptions,
    users,
    stateDir,
    vars,
    timings: vars.COMFY_MCP_RECONCILE_SECONDS === "5" ? DEFAULT_TIMINGS : FAST_TIMINGS,
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
    /** Crash lines ("tool failed unexpectedly") logged by every gateway this harness ran. */
    crashes() {
      return [...earlierCrashes, ...crashLines(harness.gateway)];
    },
    /** Starts a new fake on the same port (after the old one was closed). */
    async newFake() {
      harness.fake = await startFakeComfy({
        port: harness.fake.port,
        stepDelayMs: harness.stepDelayMs,
        nodeDelayMs: harness.nodeDelayMs,
        ...harness.fakeOptions,
      });
      return harness.fake;
    },
    /** Kills wrangler dev (keeping its state) and starts it again on the same port and state. */
    async restartGateway() {
      for (const client of [...clients]) await client.close();
      const port = harness.gateway.port;
      earlierCrashes.push(...crashLines(harness.gateway));
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

/**
 * A scenario tally. `env` (a harness or a pool) gives the timings and the gateway crash lines: any
 * new "tool failed unexpectedly" line during the scenario is counted in `crashes` and fails it.
 */
function tally(scenario, env) {
  const result = {
    scenario,
    timings: env?.timings ?? FAST_TIMINGS,
    runs: 0,
    passed: 0,
    lost_items: 0,
    faults_fired: 0,
    crashes: 0,
    max_recovery_ms: 0,
    notes: [],
  };
  const crashesBefore = env?.crashes?.().length ?? 0;
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
    fired(n = 1) {
      result.faults_fired += n;
    },
    recovery(ms) {
      result.max_recovery_ms = Math.max(result.max_recovery_ms, Math.round(ms));
    },
    lost(n = 1) {
      result.lost_items += n;
    },
    done() {
      const crashes = (env?.crashes?.() ?? []).slice(crashesBefore);
      result.crashes = crashes.length;
      if (crashes.length > 0)
        result.notes.unshift(`${crashes.length} crash(es) in the gateway log: ${crashes[0].trim().slice(0, 200)}`);
      return { ...result, notes: result.notes.join("; ") };
    },
  };
}

/** A scenario's verdict: every run passed, nothing lost, no crash. */
export const clean = (r) => r.runs > 0 && r.passed === r.runs && r.lost_items === 0 && (r.crashes ?? 0) === 0;

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

/**
 * A problem with an asset of a completed job, or null: it has bytes (a failed probe registers the
 * asset with null bytes_size, width and height), and an image has the requested size.
 */
export function assetProblem(asset, expected = SMALL) {
  if (!asset) return "no asset";
  if (!(asset.bytes_size > 0)) return `asset ${asset.asset_id} has bytes_size ${asset.bytes_size}`;
  if (String(asset.mime_type ?? "").startsWith("image/") && expected) {
    if (asset.width !== expected.width || asset.height !== expected.height)
      return `asset ${asset.asset_id} is ${asset.width}×${asset.height}, not ${expected.width}×${expected.height}`;
  }
  return null;
}

/**
 * Checks a completed job has exactly one asset, listed exactly once, with bytes and the requested
 * size (in the job result and in list_assets). Returns a problem or null.
 */
export function checkOneAsset(job, listed, expected = SMALL) {
  if (job?.status !== "completed")
    return `job ${job?.prompt_id} ended ${job?.status ?? "unknown"}: ${job?.message ?? ""}`;
  if (job.assets.length !== 1) return `job ${job.prompt_id} has ${job.assets.length} assets`;
  const mine = listed.filter((a) => a.job_id === job.job_id);
  if (mine.length !== 1) return `job ${job.prompt_id} is listed ${mine.length} times by list_assets`;
  if (mine[0].asset_id !== job.assets[0].asset_id) return `job ${job.prompt_id}: list_assets shows another asset id`;
  const problem = assetProblem(job.assets[0], expected) ?? assetProblem(mine[0], expected);
  return problem ? `job ${job.prompt_id}: ${problem}` : null;
}

async function healthz(harness, boundMs = 10_000) {
  const started = Date.now();
  const response = await fetch(`${harness.gateway.url}/healthz`, { signal: AbortSignal.timeout(boundMs) });
  const body = await response.json();
  // "Answers" = 200 "ok", or under a fault 503 "degraded" (ok: false).
  const answers =
    (response.status === 200 && body.status === "ok") || (response.status === 503 && body.status === "degraded");
  return { ok: answers, body, ms: Date.now() - started };
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
// 1. WebSocket dropped mid-job, several times. Each drop must really happen (the fake counts it,
// or, until it does, the one-shot fault is used up and the gateway opened a new socket).
// Jobs of 40 steps (1.2 s at 30 ms): long enough that the socket the studio opens for a job is up
// while it runs, also on a loaded machine (a shorter job can finish unheard before it connects).
export async function websocketDrops(harness, { jobs = 3, steps = 40 } = {}) {
  const t = tally("WebSocket dropped mid-job", harness);
  const client = await harness.connect();
  const paths = {};
  try {
    const done = [];
    for (let i = 0; i < jobs; i++) {
      t.run();
      const before = await faultCounters(harness.fake);
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
        const after = await faultCounters(harness.fake);
        const drops = firedBetween(before, after, "dropSockets");
        const fired =
          drops !== undefined
            ? drops > 0
            : harness.fake.faults.dropSocketsAfterEvents === null &&
              after.ws_upgrade_attempts > before.ws_upgrade_attempts;
        if (fired) t.fired();
        else
          t.fail(
            `job ${i}: the socket drop never fired (no event reached an open gateway socket; ${job?.status} via ${job?.completed_via})`,
          );
        if (job?.status !== "completed") {
          t.lost();
          t.fail(`job ${i} ${job?.status}: ${job?.message}`);
          continue;
        }
        paths[job.completed_via] = (paths[job.completed_via] ?? 0) + 1;
        if (fired) done.push(job);
      } catch (error) {
        t.lost();
        t.fail(`job ${i}: ${error.message}`);
      } finally {
        // null clears the fault (0 would arm a drop after the next event).
        harness.fake.setFaults({ dropSocketsAfterEvents: null });
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
    harness.fake.setFaults({ dropSocketsAfterEvents: null });
    await client.close();
  }
  const r = t.done();
  r.completed_via = paths;
  r.notes ||= `recovery = submit → get_job completed; completed_via ${JSON.stringify(paths)}`;
  return r;
}

// ---------------------------------------------------------------------------------------------
// 2. ComfyUI restarted mid-job: the job is reported lost (bounded), new jobs work.
export async function comfyRestart(harness, { runs = 1, boundMs = 20_000 } = {}) {
  const t = tally("ComfyUI restarted mid-job", harness);
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
        // The restart hit the running job (restart() marks what was running or queued lost).
        if (harness.fake.prompts.get(promptId)?.status !== "lost")
          throw new Error(`the restart did not hit the job (${harness.fake.prompts.get(promptId)?.status})`);
        t.fired();
        const job = await waitJob(client, promptId, boundMs);
        const recovery = Date.now() - restartedAt;
        t.recovery(recovery);
        if (job?.status !== "lost")
          throw new Error(`after the restart the job is ${job?.status}, not lost (${recovery} ms)`);
        if (!/restart/i.test(job.message ?? "") || !/restart/i.test(job.error?.message ?? ""))
          throw new Error(`lost without saying ComfyUI restarted: ${job.message}`);
        const again = await client.call("generate_image", { prompt: `after restart ${i}`, ...SMALL, steps: 2 });
        const next = again.structuredContent;
        const problem =
          next?.status !== "completed" || next.assets.length !== 1
            ? `${next?.status ?? text(again)}`
            : assetProblem(next.assets[0]);
        if (problem) {
          t.lost();
          throw new Error(`the job after the restart: ${problem}`);
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

/** The fake's counter for each fault (fake.faultsFired), when it counts them. */
const FIRED_KEY = {
  http500: "http500",
  slow: "slow",
  accessRedirect: "accessRedirect",
  accessHtml200: "accessHtml200",
};

export async function comfyFaults(harness, { kinds = Object.keys(FAULTS), callBoundMs = 25_000, rounds = 1 } = {}) {
  const t = tally("ComfyUI unreachable / 500 / slow / Access", harness);
  const client = await harness.connect();
  const problems = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const kind of kinds) {
        t.run();
        const issues = [];
        // Evidence that the fault really reached the gateway, when the fake does not count it.
        let evidence = false;
        const before = kind === "unreachable" ? null : await faultCounters(harness.fake);
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
            const said = text(result);
            if (ms > callBoundMs) issues.push(`${name} under ${kind} took ${ms} ms`);
            if (kind === "slow" && ms >= FAULTS.slow.slowMs) evidence = true;
            const unclear = unclearError(result);
            if (unclear) {
              issues.push(`${name} under ${kind}: unclear error '${unclear.slice(0, 160)}'`);
              continue;
            }
            if (kind === "slow" && !result.isError) {
              const job = result.structuredContent;
              const problem = job?.status === "completed" ? assetProblem(job.assets?.[0]) : null;
              if (problem) issues.push(`${name} under slow: ${problem}`);
              continue;
            }
            if (kind === "slow" && name === "generate_image" && result.structuredContent) continue;
            if (!result.isError) issues.push(`${name} under ${kind} did not fail: ${said.slice(0, 120)}`);
            else if (kind === "unreachable" && !/not reachable/i.test(said))
              issues.push(`unreachable: '${said.slice(0, 160)}'`);
            else if (kind.startsWith("access") && !/Cloudflare Access/i.test(said))
              issues.push(`${kind}: '${said.slice(0, 160)}'`);
            else evidence = true;
          }
          const health = await healthz(harness).catch((error) => ({
            ok: false,
            body: { error: error.message },
            ms: -1,
          }));
          if (!health.ok || health.ms > 10_000)
            issues.push(`/healthz under ${kind}: ${JSON.stringify(health.body)} in ${health.ms} ms`);
          else if ((health.body.comfyui?.reachable !== false || health.body.ok !== false) && kind !== "slow")
            issues.push(`/healthz says ComfyUI is reachable under ${kind}`);
          if (kind !== "unreachable") {
            const fired = firedBetween(before, await faultCounters(harness.fake), FIRED_KEY[kind]);
            if (fired !== undefined) evidence = fired > 0;
          }
          if (evidence) t.fired();
          else issues.push(`the ${kind} fault never fired`);
        } finally {
          // Clear the fault, then time the first generation that works again.
          if (kind === "unreachable") await harness.newFake();
          else harness.fake.setFaults({ http500: false, slowMs: 0, accessRedirect: false, accessHtml200: false });
        }
        const cleared = Date.now();
        let recovered = false;
        let last = "";
        let assetIssue = false;
        while (Date.now() - cleared < 30_000) {
          const result = await client
            .call("generate_image", { prompt: `after ${kind}`, ...SMALL, steps: 2 }, { timeout: 40_000 })
            .catch((error) => ({ isError: true, content: [{ type: "text", text: error.message }] }));
          const job = result.structuredContent;
          if (job?.status === "completed" && job.assets.length === 1) {
            const problem = assetProblem(job.assets[0]);
            if (problem) issues.push(`after ${kind}: ${problem}`);
            recovered = !problem;
            assetIssue = Boolean(problem);
            break;
          }
          last = job?.status ?? text(result).slice(0, 160);
          const unclear = unclearError(result);
          if (unclear) issues.push(`after ${kind}: unclear error '${unclear.slice(0, 160)}'`);
          await sleep(250);
        }
        t.recovery(Date.now() - cleared);
        if (!recovered) {
          if (!assetIssue) issues.push(`no generation works within 30 s after ${kind} cleared (last: ${last})`);
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
  r.notes = [r.notes, ...problems].filter(Boolean).join("; ");
  r.notes ||= `${kinds.join(", ")}; recovery = fault cleared → generation completed`;
  return r;
}

// ---------------------------------------------------------------------------------------------
// 4. Studio (wrangler dev) restarted mid-job: completes afterwards, registered once.
export async function studioRestart(harness, { runs = 1 } = {}) {
  const t = tally("Studio restarted mid-job", harness);
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
      const status = await untilRunning(harness.fake, promptId);
      if (status !== "running") throw new Error(`the job was ${status}, not running, when the gateway stopped`);
      t.fired();
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
  const t = tally("Client disconnects mid-wait", harness);
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
      const settledEarly = await Promise.race([call.then(() => true), sleep(0).then(() => false)]);
      if (settledEarly) throw new Error(`the call had already answered before the ${how}: nothing was disconnected`);
      const disconnectedAt = Date.now();
      if (how === "abort") controller.abort();
      else await first.close();
      t.fired();
      // The disconnected call settles (rejects) at once on the client's side; it must not hang.
      const outcome = await Promise.race([call, sleep(5_000).then(() => ({ hung: true }))]);
      if (outcome.hung) throw new Error(`the call neither answered nor failed within 5 s of the ${how}`);
      // The fake saw the submission: find it, then ask from a new client.
      let promptId;
      for (let k = 0; k < 50 && !promptId; k++) {
        promptId = [...harness.fake.prompts.keys()].find((id) => !before.has(id));
        if (!promptId) await sleep(50);
      }
      if (!promptId) throw new Error("ComfyUI never received the job");
      second = await harness.connect();
      const job = await waitJob(second, promptId, 30_000);
      t.recovery(Date.now() - disconnectedAt);
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
  r.notes ||= "alternating AbortController abort / client close; recovery = disconnect → job completed (new client)";
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
  const t = tally(`Load ${users.length} users × ${perUser} concurrent`, harness);
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
  let completed = 0;
  const paths = {};
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
      completed++;
      paths[o.job.completed_via] = (paths[o.job.completed_via] ?? 0) + 1;
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
  // `completed` counts the jobs that passed every check above (not the calls the scenario made).
  r.figures = {
    users: users.length,
    per_user: perUser,
    submitted: outcomes.length,
    completed,
    completed_via: paths,
    wall_ms: wallMs,
    throughput_jobs_per_s: Number((completed / (wallMs / 1000)).toFixed(2)),
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

/**
 * Three fake ComfyUIs behind one gateway (COMFYUI_BACKENDS), with an SDK v2 client on /mcp. Health
 * checks every 1 s and a 2 s grace unless `defaults` (the production 10 s / 30 s, reconcile 5 s).
 */
export async function startPoolHarness({
  names = ["a", "b", "c"],
  stepDelayMs = 20,
  vars = {},
  defaults = false,
} = {}) {
  const fakes = {};
  for (const name of names) fakes[name] = await startFakeComfy({ port: 0, stepDelayMs });
  const pool = {
    fakes,
    stepDelayMs,
    gateway: undefined,
    client: undefined,
    timings: defaults ? DEFAULT_TIMINGS : `${FAST_TIMINGS}, health 1 s, grace 2 s`,
    rejoinMs: defaults ? 40_000 : 15_000,
    crashes: () => crashLines(pool.gateway),
  };
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
        ...(defaults ? DEFAULT_VARS : { COMFY_MCP_HEALTH_SECONDS: "1", COMFY_MCP_BACKEND_GRACE_SECONDS: "2" }),
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
 * it runs one of them (a run where it ran none fails: the kill hit nothing). Every job must
 * complete exactly once (one asset with bytes and the requested size, listed once), none may
 * report the victim unless it finished there before dying, and moved jobs count their attempts.
 * A call whose wait ran out first (the production 30 s grace) is followed with get_job.
 * Recovery = kill → every job completed. The victim comes back on its port before the next run.
 */
export async function backendKilledUnderLoad(pool, { runs = 1, jobs = 30, victim = "b", steps = 20 } = {}) {
  const t = tally(`Backend killed under load (${Object.keys(pool.fakes).length} backends, ${jobs} jobs)`, pool);
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
    const runningThere = () => [...killed.prompts.values()].some((p) => p.status === "running");
    while (!runningThere() && Date.now() < deadline) await sleep(20);
    if (runningThere()) t.fired();
    else problems.push(`${victim} ran none of the jobs within 10 s: the kill hit nothing`);
    const finishedBefore = new Set(killed.finishTimes.keys());
    const killedAt = now();
    await killed.close();
    const results = await Promise.all(
      calls.map(async (call) => {
        const result = await call;
        const job = result.structuredContent;
        if (result.isError || !job?.prompt_id || TERMINAL.includes(job.status)) return result;
        const settled = await waitJob(pool.client, job.prompt_id, 90_000).catch(() => job);
        return { ...result, structuredContent: settled };
      }),
    );
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
    const rejoinMs = pool.rejoinMs ?? 15_000;
    const back = Date.now() + rejoinMs;
    for (;;) {
      const listedBackends = (await pool.client.call("list_backends")).structuredContent?.backends ?? [];
      if (listedBackends.find((b) => b.name === victim)?.state === "up") break;
      if (Date.now() > back) {
        problems.push(`${victim} did not rejoin within ${rejoinMs / 1000} s`);
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
  const lines = [
    "| scenario | timings | runs | passed | lost items | faults fired | crashes | max recovery ms |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of results)
    lines.push(
      `| ${r.scenario} | ${r.timings ?? FAST_TIMINGS} | ${r.runs} | ${r.passed} | ${r.lost_items} | ${r.faults_fired ?? 0} | ${r.crashes ?? 0} | ${r.max_recovery_ms} |`,
    );
  return lines.join("\n");
}
