// The soak of `npm run reliability` (never part of `npm test`): three users with static bearer
// tokens submit jobs of 30 s–3 min against one fake ComfyUI (one job at a time, like ComfyUI, so
// their jobs queue), through `wrangler dev` with the production reconcile interval (5 s), so a job
// that a safety net completed shows as such. Two phases of equal length: no faults, then random
// WebSocket drops (`fake.dropSockets()` at random times). Each job is followed with
// get_job(wait_seconds) until it ends; its completed_via, its asset (bytes, size) and the longest
// silence between progress notifications are recorded. Per phase: jobs submitted / completed /
// lost, completion paths, socket drops injected and seen, reconnects (list_backends last_hour).
// Required: nothing lost, every drop fired, no crash in the gateway log, and in the no-fault phase
// the event path completed ≥ 99 % of the jobs.
import { mulberry32 } from "../support/photo-like.ts";
import {
  allAssets,
  checkOneAsset,
  DEFAULT_TIMINGS,
  DEFAULT_VARS,
  faultCounters,
  firedBetween,
  lastHour,
  now,
  sleep,
  startHarness,
  TERMINAL,
  text,
} from "./reliability-scenarios.mjs";

const USERS = ["soak1", "soak2", "soak3"];
const SIZE = { width: 64, height: 64 };
export const EVENT_SHARE_REQUIRED = 0.99;

/**
 * Job shapes. Full: 1 s per sampler step, 15–165 steps, plus a VAE decode silent for 15 s (30 s–3 min
 * per job). Quick: the same shape ten times faster.
 */
export function soakProfile({ quick = false } = {}) {
  return quick
    ? { stepDelayMs: 100, minSteps: 15, maxSteps: 165, silentNodeMs: 1_500, dropEveryMs: [3_000, 10_000] }
    : { stepDelayMs: 1_000, minSteps: 15, maxSteps: 165, silentNodeMs: 15_000, dropEveryMs: [20_000, 75_000] };
}

/** A seeded PRNG in [0, 1), so a soak is repeatable. */
function random(seed) {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}

/**
 * Follows one job with get_job(wait_seconds) until it ends or `boundMs` passes. Answers the last
 * job view and the longest silence between progress notifications (from each call's start to its
 * answer, so silence at either end counts; the gateway sends a heartbeat at least every 5 s while
 * a job is open, queued or running).
 */
async function follow(client, promptId, boundMs) {
  const deadline = Date.now() + boundMs;
  let job;
  let longestGap = 0;
  while (Date.now() < deadline) {
    const wait = Math.max(1, Math.min(55, Math.floor((deadline - Date.now()) / 1000) - 5));
    let mark = now();
    const gap = () => {
      const at = now();
      longestGap = Math.max(longestGap, at - mark);
      mark = at;
    };
    const result = await client.call(
      "get_job",
      { prompt_id: promptId, wait_seconds: wait },
      { timeout: (wait + 30) * 1000, resetTimeoutOnProgress: true, onprogress: gap },
    );
    gap();
    if (result.isError) throw new Error(`get_job: ${text(result).slice(0, 200)}`);
    job = result.structuredContent;
    if (TERMINAL.includes(job.status)) break;
  }
  return { job, longestGap };
}

/**
 * One phase: every user submits jobs one after the other until `windowMs` has passed, then the
 * phase waits for the jobs in flight. With `drops`, the fake's sockets are dropped at random times.
 */
async function phase(harness, clients, { name, windowMs, drops, profile, rand, log }) {
  const started = Date.now();
  const windowEnd = started + windowMs;
  const before = await lastHour(clients[0]);
  const countersBefore = await faultCounters(harness.fake);
  const jobs = [];
  const problems = [];
  let injected = 0;
  let inFlight = USERS.length;
  const maxJobMs = profile.maxSteps * profile.stepDelayMs + profile.silentNodeMs + 10_000;

  const dropper = (async () => {
    if (!drops) return;
    const [low, high] = profile.dropEveryMs;
    while (inFlight > 0) {
      const until = Date.now() + low + rand() * (high - low);
      while (Date.now() < until && inFlight > 0) await sleep(200);
      if (inFlight === 0) break;
      if (harness.fake.dropSockets() > 0) injected++;
    }
  })();

  await Promise.all(
    USERS.map(async (user, u) => {
      try {
        let n = 0;
        while (Date.now() < windowEnd) {
          const steps = profile.minSteps + Math.floor(rand() * (profile.maxSteps - profile.minSteps + 1));
          const record = { user, name: `${name} ${user} #${n++}`, steps, submittedAt: Date.now() };
          jobs.push(record);
          try {
            const submitted = await clients[u].call("generate_image", {
              prompt: `soak ${record.name}`,
              ...SIZE,
              steps,
              seed: Math.floor(rand() * 1e9),
              wait_seconds: 0,
            });
            if (submitted.isError) throw new Error(`submit: ${text(submitted).slice(0, 200)}`);
            record.promptId = submitted.structuredContent.prompt_id;
            // Three users' jobs queue behind each other: allow for two others ahead.
            const followed = await follow(clients[u], record.promptId, 3 * maxJobMs + 60_000);
            Object.assign(record, followed, { endedAt: Date.now() });
            const run = harness.fake.prompts.get(record.promptId);
            record.ranMs = run?.finishedAt && run?.startedAt ? run.finishedAt - run.startedAt : null;
          } catch (error) {
            record.error = error.message;
          }
          log(
            `  ${record.name}: ${record.steps} steps, ${record.job?.status ?? record.error} via ${record.job?.completed_via ?? "-"}` +
              `${record.ranMs ? `, ran ${(record.ranMs / 1000).toFixed(0)} s` : ""}, longest progress gap ${((record.longestGap ?? 0) / 1000).toFixed(1)} s`,
          );
        }
      } finally {
        inFlight--;
      }
    }),
  );
  await dropper;

  // Every job: completed, one asset with bytes and the requested size, listed once for its user.
  const listed = {};
  for (const [u, user] of USERS.entries()) listed[user] = await allAssets(clients[u]);
  const paths = {};
  let completed = 0;
  let lost = 0;
  for (const record of jobs) {
    const problem = record.error ?? checkOneAsset(record.job, listed[record.user], SIZE);
    if (problem) {
      lost++;
      problems.push(`${record.name}: ${problem}`);
      continue;
    }
    completed++;
    const via = record.job.completed_via ?? "null";
    paths[via] = (paths[via] ?? 0) + 1;
  }
  const after = await lastHour(clients[0]);
  const countersAfter = await faultCounters(harness.fake);
  const dropsFired = firedBetween(countersBefore, countersAfter, "dropSockets");
  const gatewayPaths = {};
  for (const [path, n] of Object.entries(after.completions))
    if (n - (before.completions[path] ?? 0) > 0) gatewayPaths[path] = n - (before.completions[path] ?? 0);
  const result = {
    phase: name,
    minutes: Number(((Date.now() - started) / 60_000).toFixed(1)),
    submitted: jobs.length,
    completed,
    lost,
    completed_via: paths,
    gateway_completions: gatewayPaths,
    drops_injected: injected,
    sockets_dropped: dropsFired ?? null,
    socket_drops_seen: after.socket_drops - before.socket_drops,
    reconnects: after.reconnects - before.reconnects,
    longest_progress_gap_ms: Math.round(Math.max(0, ...jobs.map((j) => j.longestGap ?? 0))),
    longest_job_ms: Math.max(0, ...jobs.map((j) => j.ranMs ?? 0)),
    shortest_job_ms: Math.min(...jobs.map((j) => j.ranMs ?? Number.POSITIVE_INFINITY)),
    problems,
  };
  if (lost > 0) problems.unshift(`${lost} job(s) lost`);
  if (jobs.length === 0) problems.push("no job was submitted");
  if (drops && injected === 0) problems.push("no socket drop fired");
  if (drops && dropsFired !== undefined && dropsFired < injected)
    problems.push(`the fake counted ${dropsFired} dropped sockets for ${injected} drops`);
  if (!drops) {
    const share = completed > 0 ? (paths.event ?? 0) / completed : 0;
    result.event_share = share;
    if (share < EVENT_SHARE_REQUIRED)
      problems.push(
        `the event path completed ${(share * 100).toFixed(1)} % of the jobs (required ≥ ${EVENT_SHARE_REQUIRED * 100} %): ${JSON.stringify(paths)}`,
      );
  }
  return result;
}

/**
 * The soak: `minutes` of submissions split into a no-fault phase and a socket-drop phase (each
 * then waits for its jobs in flight). Answers { phases, problems, crashes, ok, profile }.
 */
export async function soak({ minutes = 10, quick = false, seed = 0x50a4, log = () => undefined } = {}) {
  const profile = soakProfile({ quick });
  const rand = random(seed);
  const harness = await startHarness({
    stepDelayMs: profile.stepDelayMs,
    nodeDelayMs: 1,
    users: USERS,
    waitSeconds: 45,
    vars: DEFAULT_VARS,
    fakeOptions: { nodeDelayMsByClass: { VAEDecode: profile.silentNodeMs } },
  });
  const problems = [];
  const phases = [];
  try {
    if (typeof harness.fake.setTiming !== "function")
      problems.push("the fake has no nodeDelayMsByClass: jobs run without their silent node");
    const clients = await Promise.all(USERS.map((user) => harness.connect(user)));
    const windowMs = (minutes * 60_000) / 2;
    for (const [name, drops] of [
      ["no faults", false],
      ["random socket drops", true],
    ]) {
      log(`… soak phase '${name}' (${(windowMs / 60_000).toFixed(1)} min of submissions, then the jobs in flight)`);
      const result = await phase(harness, clients, { name, windowMs, drops, profile, rand, log });
      phases.push(result);
      problems.push(...result.problems.map((p) => `${name}: ${p}`));
    }
  } finally {
    const crashes = harness.crashes();
    if (crashes.length > 0)
      problems.push(`${crashes.length} crash(es) in the gateway log: ${crashes[0].trim().slice(0, 200)}`);
    await harness.stop();
  }
  return { phases, problems, ok: problems.length === 0, profile, timings: DEFAULT_TIMINGS, users: USERS.length };
}

/** The soak's markdown table, one row per phase. */
export function soakTable(result) {
  const s = (ms) => (ms / 1000).toFixed(1);
  const via = (paths) =>
    ["event", "reconcile", "reconnect", "get_job", "orphan_check"].map((p) => paths[p] ?? 0).join(" / ") +
    (Object.keys(paths).some((p) => !["event", "reconcile", "reconnect", "get_job", "orphan_check"].includes(p))
      ? ` (+ ${JSON.stringify(Object.fromEntries(Object.entries(paths).filter(([p]) => !["event", "reconcile", "reconnect", "get_job", "orphan_check"].includes(p))))})`
      : "");
  const lines = [
    "| soak phase | minutes | jobs submitted | completed | lost | completed via event / reconcile / reconnect / get_job / orphan_check | socket drops injected | socket drops seen | reconnects | longest progress gap s | job length s |",
    "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
  ];
  for (const p of result.phases)
    lines.push(
      `| ${p.phase} | ${p.minutes} | ${p.submitted} | ${p.completed} | ${p.lost} | ${via(p.completed_via)} | ${p.drops_injected} | ${p.socket_drops_seen} | ${p.reconnects} | ${s(p.longest_progress_gap_ms)} | ${s(p.shortest_job_ms === Number.POSITIVE_INFINITY ? 0 : p.shortest_job_ms)}–${s(p.longest_job_ms)} |`,
    );
  return lines.join("\n");
}
