#!/usr/bin/env node
/**
 * Completion latency: how long after ComfyUI finishes a job does the MCP client hold the result,
 * for jobs of 0.1 s, 10 s and 60 s, and does progress keep flowing while they run?
 *
 * One in-process fake ComfyUI (which records, per prompt, the instant it finished: `finishTimes`)
 * and one `wrangler dev` gateway, started with the production reconcile interval (5 s) so a job
 * that only the reconcile fallback notices shows up late instead of being hidden. For each job:
 *   - gateway:  generate_image (then get_job while the job is still running) over Streamable HTTP,
 *               with a progress token; the notice is the moment the call that returns the finished
 *               job resolves, minus the fake's finish time.
 *   - baseline: on the same job, a poller does what the original Python server did, GET
 *               /history/{id} once a second, but from a uniformly random phase (first poll at
 *               U[0, 1000) ms after the fake accepted the prompt, then every 1000 ms), so it is
 *               neither flattered nor penalised by the jobs' lengths; notice = the poll that sees
 *               the entry, minus the finish time.
 * Both clocks are this process's `performance.timeOrigin + performance.now()`, the same clock the
 * fake stamps finishes with, so the difference needs no synchronisation.
 *
 * Targets, per job length: gateway median <= 25 ms, >= 20x better than the polling median, longest
 * gap between progress notifications <= 10 s. Exit code 1 when a target is missed, a job fails or
 * the run crashes; 2 for a bad option. See bench/README.md.
 */
import { parseArgs } from "node:util";
import { benchmark, integerOption, percentile, progress, progressDone, reportChecks } from "./cli.mjs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startGateway } from "../test/e2e/gateway.mjs";
import { startFakeComfy } from "../test/fake-comfyui/server.mjs";

const TARGET_MEDIAN_MS = 25;
const TARGET_SPEEDUP = 20;
const TARGET_GAP_MS = 10_000;
const POLL_INTERVAL_MS = 1_000;
/** Fewer samples than this and "p99" would only be the maximum under another name. */
const P99_MIN_SAMPLES = 100;

/**
 * The job lengths. Work happens in the sampler (one `progress` event per step) and, for the long
 * ones, in a VAEDecode that runs for many seconds without sending anything, as a real decode (or
 * model load, or video encode) does: only the gateway's heartbeat can keep progress flowing then.
 * `steps` is passed to generate_image; the other fields go to the fake's setTiming.
 */
const LENGTHS = [
  { key: "100ms", label: "0.1 s", steps: 4, stepDelayMs: 24, nodeDelayMs: 1, nodeDelayMsByClass: {} },
  { key: "10s", label: "10 s", steps: 10, stepDelayMs: 400, nodeDelayMs: 1, nodeDelayMsByClass: { VAEDecode: 6_000 } },
  {
    key: "60s",
    label: "60 s",
    steps: 20,
    stepDelayMs: 1_750,
    nodeDelayMs: 1,
    nodeDelayMsByClass: { VAEDecode: 25_000 },
  },
];
const DEFAULT_JOBS = { "100ms": 100, "10s": 10, "60s": 6 };
const QUICK_JOBS = { "100ms": 30, "10s": 3, "60s": 2 };
const IMAGE = { width: 64, height: 64 };

const opts = readOptions();
const now = () => performance.timeOrigin + performance.now();
const log = (line = "") => console.log(line);

let fake;
let gatewayStarting;
let gateway;
let client;
let cleaning;
/** Called by the fake's prompt store when it accepts a prompt (see watchSubmissions). */
let onSubmitted;
const bench = benchmark("the gateway and the fake ComfyUI", cleanup);
await bench.run(main);

async function main() {
  const lengths = LENGTHS.filter((length) => opts.jobs[length.key] > 0);
  log("completion latency: ComfyUI finished -> MCP client has the result (and progress while it runs)");
  log(
    `  jobs per length: ${lengths.map((l) => `${l.label} x ${opts.jobs[l.key]}`).join(", ")} (+${opts.warmup} warm-up at 0.1 s)${opts.quick ? " [--quick]" : ""}`,
  );
  log(
    `  wait_seconds ${opts.waitSeconds} per call (then get_job), COMFY_MCP_RECONCILE_SECONDS ${opts.reconcileSeconds}, ${IMAGE.width}x${IMAGE.height}${opts.idleSocketCloseMs > 0 ? `, fake closes WebSockets idle for ${opts.idleSocketCloseMs} ms` : ""}`,
  );

  fake = await startFakeComfy({ port: 0 });
  if (typeof fake.setTiming !== "function")
    throw new Error("this fake ComfyUI has no setTiming(): test/fake-comfyui is older than this benchmark");
  watchSubmissions(fake);
  // A proxy (or tunnel) that closes a WebSocket after n ms without a frame either way: opt-in.
  if (opts.idleSocketCloseMs > 0) fake.setFaults({ idleSocketCloseMs: opts.idleSocketCloseMs });
  const started = performance.now();
  gatewayStarting = startGateway({
    comfyUrl: fake.url,
    vars: {
      COMFY_MCP_WAIT_SECONDS: String(opts.waitSeconds),
      COMFY_MCP_RECONCILE_SECONDS: String(opts.reconcileSeconds),
    },
  });
  gateway = await gatewayStarting;
  log(
    `  fake ComfyUI ${fake.url}, gateway ${gateway.url} (ready in ${((performance.now() - started) / 1000).toFixed(1)} s)\n`,
  );

  client = new Client({ name: "completion-latency-bench", version: "0.2.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(gateway.mcpUrl)));

  // Cold isolate, first WebSocket, first database write: not timed.
  fake.setTiming(timingOf(LENGTHS[0]));
  for (let i = 0; i < opts.warmup; i++) {
    if (bench.interrupted) return;
    progress(`warm-up ${i + 1}/${opts.warmup}`);
    const run = await runJob(LENGTHS[0], `warm-up ${i}`);
    if (run.failure) throw new Error(`warm-up job failed: ${run.failure}`);
  }
  progressDone();

  const results = [];
  for (const length of lengths) {
    if (bench.interrupted) return;
    results.push(await measureLength(length));
  }
  if (!bench.interrupted) report(results);
}

// --- one length ---------------------------------------------------------------------------------

async function measureLength(length) {
  fake.setTiming(timingOf(length));
  const count = opts.jobs[length.key];
  const sockets = socketsOpened();
  const idleCloses = fake.faultsFired?.idleCloses;
  const runs = [];
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    if (bench.interrupted) break;
    runs.push(await runJob(length, `${length.key} job ${i}`, `${length.label} job ${i + 1}/${count}`));
  }
  progressDone();
  const opened = socketsOpened();
  return {
    length,
    runs,
    seconds: (performance.now() - started) / 1000,
    socketsOpened: sockets === undefined || opened === undefined ? undefined : opened - sockets,
    idleCloses: idleCloses === undefined ? undefined : fake.faultsFired.idleCloses - idleCloses,
  };
}

/**
 * One job: generate_image with wait_seconds, then get_job(wait_seconds) while it is still open,
 * every call with a progress token and its timeout reset by progress. Alongside, the random-phase
 * poller on the same prompt. Returns the figures, or `failure` with the reason.
 */
async function runJob(length, prompt, label = prompt) {
  const submitted = new Promise((resolve) => {
    onSubmitted = resolve;
  });
  const progressAt = [];
  const callOptions = {
    timeout: (opts.waitSeconds + 15) * 1_000,
    resetTimeoutOnProgress: true,
    maxTotalTimeout: (opts.waitSeconds + 60) * 1_000,
    onprogress: () => progressAt.push(now()),
  };
  const callStart = now();
  let poller;
  void submitted.then((submission) => {
    poller = startPoller(submission.promptId, submission.at);
  });
  let calls = 0;
  let job;
  let received;
  let failure;
  try {
    const giveUpAt = callStart + (estimatedMs(length) + 120_000) * 1.5;
    let result = await client.callTool(
      {
        name: "generate_image",
        arguments: { prompt, steps: length.steps, ...IMAGE, wait_seconds: opts.waitSeconds },
      },
      undefined,
      callOptions,
    );
    calls++;
    for (;;) {
      received = now();
      job = result.structuredContent;
      if (result.isError) {
        failure = `call ${calls} failed: ${String(result.content?.[0]?.text).slice(0, 300)}`;
        break;
      }
      if (!["submitting", "queued", "running"].includes(job?.status)) break;
      if (received > giveUpAt) {
        failure = `still ${job.status} after ${((received - callStart) / 1000).toFixed(0)} s and ${calls} calls`;
        break;
      }
      progress(`${label}: ${job.status} after call ${calls}, get_job`);
      result = await client.callTool(
        { name: "get_job", arguments: { prompt_id: job.prompt_id, wait_seconds: opts.waitSeconds } },
        undefined,
        callOptions,
      );
      calls++;
    }
  } catch (error) {
    received = now();
    failure = `call ${calls + 1} threw: ${error?.message ?? error}`;
  }
  const promptId = job?.prompt_id;
  const finished = promptId ? fake.finishTimes.get(promptId) : undefined;
  if (!failure && (job?.status !== "completed" || finished === undefined))
    failure = `status ${job?.status ?? "none"}, finish time ${finished ?? "not recorded"}`;
  if (failure) {
    poller?.stop();
    await settleFake();
    return { failure: `${prompt}: ${failure}` };
  }

  // The poller sees the entry within a poll interval of the finish; a broken one is capped.
  if (!poller) throw new Error(`${prompt}: the fake never reported accepting prompt ${promptId}`);
  const polled = await poller.result(POLL_INTERVAL_MS * 3);
  if (poller.promptId !== promptId)
    throw new Error(`poller followed ${poller.promptId} but the gateway returned ${promptId}`);

  const marks = [callStart, ...progressAt.filter((at) => at <= received), received];
  let longestGap = 0;
  for (let i = 1; i < marks.length; i++) longestGap = Math.max(longestGap, marks[i] - marks[i - 1]);
  const record = fake.prompts.get(promptId);
  return {
    notice: received - finished,
    polled: polled.seen === undefined ? undefined : polled.seen - finished,
    pollFailure: polled.failure,
    longestGap,
    notifications: progressAt.length,
    calls,
    completedVia: job.completed_via === undefined ? "n/a" : String(job.completed_via),
    runtime: record?.startedAt && record?.finishedAt ? record.finishedAt - record.startedAt : undefined,
  };
}

/**
 * The fake keeps every accepted prompt in `fake.prompts`; wrapping that one Map's `set` tells us
 * the instant a prompt is accepted (and its id) without polling the fake or touching its code.
 */
function watchSubmissions(fakeComfy) {
  const store = fakeComfy.prompts;
  const set = store.set.bind(store);
  store.set = (promptId, record) => {
    const isNew = !store.has(promptId);
    const result = set(promptId, record);
    if (isNew && onSubmitted) {
      const notify = onSubmitted;
      onSubmitted = undefined;
      notify({ promptId, at: now() });
    }
    return result;
  };
}

/**
 * The original server's wait (comfyui_client.py `_wait_for_prompt`: GET /history/{id} every second
 * until the id is in it), with its phase randomised: polls at submission + U[0, 1000) ms + k x 1000.
 */
function startPoller(promptId, submittedAt) {
  const phase = Math.random() * POLL_INTERVAL_MS;
  let k = 0;
  let timer;
  let stopped = false;
  let settle;
  const outcome = { seen: undefined, failure: undefined, polls: 0 };
  const done = new Promise((resolve) => {
    settle = () => {
      stopped = true;
      clearTimeout(timer);
      resolve(outcome);
    };
  });
  const schedule = () => {
    timer = setTimeout(poll, Math.max(0, submittedAt + phase + k * POLL_INTERVAL_MS - now()));
  };
  const poll = async () => {
    if (stopped) return;
    outcome.polls++;
    try {
      const response = await fetch(`${fake.url}/history/${encodeURIComponent(promptId)}`);
      const entry = (await response.json())[promptId];
      if (entry) {
        outcome.seen = now();
        if (entry.status?.status_str !== "success") outcome.failure = `history says ${entry.status?.status_str}`;
        return settle();
      }
    } catch (error) {
      outcome.failure = `GET /history failed: ${error?.message ?? error}`;
      return settle();
    }
    k++;
    if (!stopped) schedule();
  };
  schedule();
  return {
    promptId,
    stop: settle,
    /** The outcome once the poller has seen the entry, or after `graceMs` more (then a failure). */
    result: (graceMs) =>
      Promise.race([
        done,
        sleep(graceMs).then(() => {
          if (outcome.seen === undefined) outcome.failure ??= `not seen within ${graceMs} ms of the gateway's result`;
          settle();
          return outcome;
        }),
      ]),
  };
}

/** After a failed job, wait (bounded) until the fake is idle so the next job does not queue behind it. */
async function settleFake() {
  const deadline = performance.now() + 120_000;
  while (performance.now() < deadline) {
    const open = [...fake.prompts.values()].some(
      (record) => record.status === "pending" || record.status === "running",
    );
    if (!open) return;
    await sleep(250);
  }
}

function timingOf({ stepDelayMs, nodeDelayMs, nodeDelayMsByClass }) {
  return { stepDelayMs, nodeDelayMs, nodeDelayMsByClass };
}

function estimatedMs(length) {
  const silent = Object.values(length.nodeDelayMsByClass).reduce((sum, ms) => sum + ms, 0);
  return length.steps * length.stepDelayMs + silent + 7 * length.nodeDelayMs;
}

/** WebSocket connections the fake has accepted so far (all clients), if it counts them. */
function socketsOpened() {
  if (!(fake.connections instanceof Map)) return undefined;
  let opened = 0;
  for (const { opened: count } of fake.connections.values()) opened += count;
  return opened;
}

// --- report -------------------------------------------------------------------------------------

function report(results) {
  log("per job length: notice = ComfyUI finished -> client holds the result (ms); gap = longest silence");
  log("between MCP progress notifications (call start, each notification, result) while the job ran");
  log();
  const header = [
    pad("length", 7),
    pad("jobs", 5, true),
    pad("ran s", 7, true),
    pad("gw median", 10, true),
    pad("gw p99", 19, true),
    pad("poll median", 12, true),
    pad("poll p99", 19, true),
    pad("ratio", 8, true),
    pad("longest gap", 12, true),
    "  completed_via",
  ];
  log(header.join(" "));
  const summaries = [];
  for (const result of results) {
    const ok = result.runs.filter((run) => !run.failure);
    const notices = ok.map((run) => run.notice);
    const polled = ok.map((run) => run.polled).filter((value) => value !== undefined);
    const viaGateway = stats(notices);
    const viaPolling = stats(polled);
    const gaps = ok.map((run) => run.longestGap);
    const runtimes = ok.map((run) => run.runtime).filter((value) => value !== undefined);
    const via = countBy(ok.map((run) => run.completedVia));
    const summary = {
      result,
      failures: [
        ...result.runs.filter((run) => run.failure).map((run) => run.failure),
        ...ok.filter((run) => run.pollFailure).map((run) => `baseline poller: ${run.pollFailure}`),
      ],
      gateway: viaGateway,
      polling: viaPolling,
      ratio: viaGateway.median > 0 ? viaPolling.median / viaGateway.median : Number.NaN,
      longestGap: gaps.length ? Math.max(...gaps) : Number.NaN,
      medianGap: percentile(gaps, 0.5),
      runtime: percentile(runtimes, 0.5),
      via,
      calls: countBy(ok.map((run) => String(run.calls))),
      notifications: ok.reduce((sum, run) => sum + run.notifications, 0),
    };
    summaries.push(summary);
    log(
      [
        pad(result.length.label, 7),
        pad(String(result.runs.length), 5, true),
        pad(fmt(summary.runtime / 1000, 2), 7, true),
        pad(fmt(viaGateway.median), 10, true),
        pad(tail(viaGateway), 19, true),
        pad(fmt(viaPolling.median), 12, true),
        pad(tail(viaPolling), 19, true),
        pad(times(summary.ratio), 8, true),
        pad(`${fmt(summary.longestGap / 1000, 2)} s`, 12, true),
        `  ${formatCounts(via)}`,
      ].join(" "),
    );
  }
  log();
  log(
    `  p99 interpolates between the two nearest samples (numpy's default) once a length has >= ${P99_MIN_SAMPLES} jobs; below that the column is the maximum, labelled with n.`,
  );
  log(
    "  poll = the original server's 1 s GET /history loop run alongside each gateway job on the same prompt, first poll at a random phase in [0, 1000) ms.",
  );
  for (const s of summaries) {
    const sockets =
      (s.result.socketsOpened === undefined ? "" : `, WebSocket connections opened ${s.result.socketsOpened}`) +
      (opts.idleSocketCloseMs > 0 && s.result.idleCloses !== undefined ? ` (idle-closed ${s.result.idleCloses})` : "");
    log(
      `  ${s.result.length.label}: ${s.notifications} progress notifications, median per-job longest gap ${fmt(s.medianGap / 1000, 2)} s, ${formatCalls(s.calls)}${sockets}, ${fmt(s.result.seconds, 0)} s`,
    );
  }
  log();

  const checks = [];
  for (const s of summaries) {
    const label = s.result.length.label.padEnd(6);
    checks.push(
      {
        name: `${label} gateway median ${fmt(s.gateway.median)} ms <= ${TARGET_MEDIAN_MS} ms`,
        pass: s.gateway.median <= TARGET_MEDIAN_MS,
      },
      {
        name: `${label} gateway ${times(s.ratio)} better than 1 s polling (>= ${TARGET_SPEEDUP}x)`,
        pass: s.ratio >= TARGET_SPEEDUP,
      },
      {
        name: `${label} longest progress gap ${fmt(s.longestGap / 1000, 2)} s <= ${TARGET_GAP_MS / 1000} s`,
        pass: s.longestGap <= TARGET_GAP_MS,
      },
      // Figures from a run where jobs failed describe a different path; flag them instead of trusting them.
      { name: `${label} every job completed (${s.failures.length} failed)`, pass: s.failures.length === 0 },
    );
  }
  const pass = reportChecks(checks, log);
  const failures = summaries.flatMap((s) => s.failures);
  for (const failure of failures.slice(0, 10)) log(`  ${failure}`);
  if (failures.length > 0) log(`\ngateway log tail:\n${gateway.logs().slice(-3000)}`);

  if (opts.json) {
    const round = (value, digits = 1) =>
      Number.isFinite(value) ? Math.round(value * 10 ** digits) / 10 ** digits : null;
    const figures = (s) => ({
      count: s.count,
      min: round(s.min),
      median: round(s.median),
      p99: round(s.p99),
      max: round(s.max),
    });
    log(
      JSON.stringify({
        lengths: summaries.map((s) => ({
          length: s.result.length.label,
          jobs: s.result.runs.length,
          runtime_median_ms: round(s.runtime, 0),
          gateway_ms: figures(s.gateway),
          polling_ms: figures(s.polling),
          ratio: round(s.ratio),
          longest_gap_ms: round(s.longestGap, 0),
          median_longest_gap_ms: round(s.medianGap, 0),
          completed_via: s.via,
          calls_per_job: s.calls,
          websocket_connections_opened: s.result.socketsOpened ?? null,
          idle_socket_closes: s.result.idleCloses ?? null,
          failures: s.failures.length,
        })),
        p99_is_max_below: P99_MIN_SAMPLES,
        poll_interval_ms: POLL_INTERVAL_MS,
        reconcile_seconds: opts.reconcileSeconds,
        wait_seconds: opts.waitSeconds,
        idle_socket_close_ms: opts.idleSocketCloseMs,
        targets: { median_ms: TARGET_MEDIAN_MS, speedup: TARGET_SPEEDUP, gap_ms: TARGET_GAP_MS },
        pass,
      }),
    );
  }
}

function stats(values) {
  return {
    count: values.length,
    min: percentile(values, 0),
    median: percentile(values, 0.5),
    p99: percentile(values, 0.99),
    max: percentile(values, 1),
  };
}

/** "p99" where there are enough samples for one, otherwise the maximum, saying so. */
function tail(s) {
  if (s.count === 0) return "n/a";
  return s.count >= P99_MIN_SAMPLES ? `${fmt(s.p99)} (p99)` : `${fmt(s.max)} (max n=${s.count})`;
}

function countBy(values) {
  const counts = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

function formatCounts(counts) {
  const entries = Object.entries(counts);
  return entries.length ? entries.map(([key, count]) => `${key} ${count}`).join(", ") : "-";
}

/** `{1: 5, 2: 1}` -> "1 MCP call: 5 jobs, 2 MCP calls: 1 job". */
function formatCalls(counts) {
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  return Object.entries(counts)
    .map(([calls, jobs]) => `${plural(Number(calls), "MCP call")}: ${plural(jobs, "job")}`)
    .join(", ");
}

function pad(text, width, right = false) {
  return right ? text.padStart(width) : text.padEnd(width);
}

function fmt(value, digits = 1) {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

function times(value) {
  return Number.isFinite(value) ? `${value.toFixed(1)}x` : "n/a";
}

// --- plumbing -----------------------------------------------------------------------------------

function readOptions() {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      "jobs-100ms": { type: "string" },
      "jobs-10s": { type: "string" },
      "jobs-60s": { type: "string" },
      warmup: { type: "string", default: "3" },
      "wait-seconds": { type: "string", default: "55" },
      "reconcile-seconds": { type: "string", default: "5" },
      "idle-socket-close-ms": { type: "string", default: "0" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(
      "usage: npm run bench -- [--quick] [--jobs-100ms 100] [--jobs-10s 10] [--jobs-60s 6] [--warmup 3]\n" +
        "                        [--wait-seconds 55] [--reconcile-seconds 5] [--idle-socket-close-ms 0] [--json]\n" +
        "  --quick: 30 / 3 / 2 jobs (about 3 minutes instead of about 9); an explicit --jobs-* wins; 0 skips a length",
    );
    process.exit(0);
  }
  const base = values.quick ? QUICK_JOBS : DEFAULT_JOBS;
  const jobs = {};
  for (const key of Object.keys(DEFAULT_JOBS)) {
    const name = `jobs-${key}`;
    jobs[key] = values[name] === undefined ? base[key] : integerOption(values, name, 0);
  }
  if (Object.values(jobs).every((count) => count === 0)) {
    console.error("every --jobs-* is 0: nothing to measure");
    process.exit(2);
  }
  const waitSeconds = integerOption(values, "wait-seconds", 1);
  if (waitSeconds > 55) {
    console.error(`--wait-seconds must be <= 55 (the tools' maximum), not '${values["wait-seconds"]}'`);
    process.exit(2);
  }
  return {
    quick: values.quick,
    jobs,
    warmup: integerOption(values, "warmup", 0),
    waitSeconds,
    reconcileSeconds: integerOption(values, "reconcile-seconds", 1),
    idleSocketCloseMs: integerOption(values, "idle-socket-close-ms", 0),
    json: values.json,
  };
}

/** Idempotent: runs from `finally` and from SIGINT, whichever comes first. */
function cleanup() {
  cleaning ??= (async () => {
    await client?.close().catch(() => undefined);
    // Interrupted during start-up: wait for the handle, or wrangler would outlive us.
    const started = gateway ?? (await gatewayStarting?.catch(() => undefined));
    await started?.stop().catch(() => undefined);
    await fake?.close().catch(() => undefined);
  })();
  return cleaning;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
