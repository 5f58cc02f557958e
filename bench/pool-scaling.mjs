#!/usr/bin/env node
/**
 * Pool scaling: how much faster does a batch of jobs finish with more ComfyUI backends (issue #8)?
 *
 * For 1, 2 and 3 backends in turn, the same batch is run against that many in-process fake
 * ComfyUIs behind one `wrangler dev` gateway (COMFYUI_BACKENDS): every fake spends a fixed time per
 * job (`--job-ms`, as 4 sampler steps of job-ms/4 each), so with perfect routing N backends finish
 * the batch N times sooner. Per backend count:
 *   - start the fakes (port 0) and a gateway of its own (fresh state), connect an SDK v2 client;
 *   - wait until list_backends shows every backend up, then warm up with one job pinned to each
 *     backend (`backend: name`: first socket, cached checkpoint loader, cold isolate), untimed;
 *   - fire every job at once (generate_image 64x64, 4 steps, distinct seeds) and time until all
 *     resolve; each job must complete, and `structuredContent.backend` says where it ran.
 * Speed-up and efficiency (speed-up / backends) are against the 1-backend wall time of the same run.
 * Then the same batch on two unequal machines (b 3x slower per job), once with weights 1:1 and
 * once 3:1, against the ideal where both stay busy to the end: a burst is routed before any job
 * finishes, so only the weights can tell the router that a will drain its queue faster.
 *
 * Nothing is asserted: the table and the last line (`scaling: 2 backends 1.96x, ...`) are the
 * result. Exit code 0 unless the run itself crashes. See bench/README.md.
 */
import { parseArgs } from "node:util";
import { benchmark, integerOption, progress, progressDone } from "./cli.mjs";
import { connectV2 } from "../test/e2e/clients.mjs";
import { startGateway } from "../test/e2e/gateway.mjs";
import { startFakeComfy } from "../test/fake-comfyui/server.mjs";

const BACKEND_COUNTS = [1, 2, 3];
/** In the mixed run, backend b is this many times slower than a. */
const SLOW_FACTOR = 3;
const NAMES = ["a", "b", "c", "d", "e", "f", "g", "h"];
const STEPS = 4;
const IMAGE = { width: 64, height: 64, steps: STEPS };
const TERMINAL = ["completed", "failed", "cancelled", "lost"];
/** The most one MCP call may block (the gateway's cap on wait_seconds). */
const WAIT_SECONDS = 55;
const READY_TIMEOUT_MS = 30_000;

const opts = readOptions();
const log = (line = "") => console.log(line);

/** Everything started for the backend count being measured; cleanup() stops it. */
let current = { fakes: [], gatewayStarting: undefined, gateway: undefined, client: undefined };
let cleaning;
const bench = benchmark("the gateway and the fake ComfyUIs", cleanup);
await bench.run(main);

async function main() {
  const stepDelayMs = opts.jobMs / STEPS;
  log("pool scaling: one batch of concurrent generate_image jobs over 1, 2 and 3 fake ComfyUI backends");
  log(
    `  ${opts.jobs} jobs per run, ${IMAGE.width}x${IMAGE.height}, ${STEPS} steps x ${fmt(stepDelayMs, 1)} ms = ${opts.jobMs} ms of fake GPU time per job`,
  );
  log(`  ideal wall time with 1 backend: ${fmt((opts.jobs * opts.jobMs) / 1000, 1)} s\n`);

  const runs = [];
  for (const count of BACKEND_COUNTS) {
    if (bench.interrupted) return;
    runs.push(await measureFresh(NAMES.slice(0, count).map((name) => ({ name, stepDelayMs, weight: 1 }))));
  }
  // Unequal machines: b takes SLOW_FACTOR times as long per job. A burst is routed before any job
  // finishes, so queue length alone splits it evenly; weights tell the router what it cannot see.
  const mixed = [];
  for (const weight of [1, SLOW_FACTOR]) {
    if (bench.interrupted) return;
    mixed.push(
      await measureFresh([
        { name: "a", stepDelayMs, weight },
        { name: "b", stepDelayMs: stepDelayMs * SLOW_FACTOR, weight: 1 },
      ]),
    );
  }
  report(runs, mixed);
}

async function measureFresh(specs) {
  try {
    return await measure(specs);
  } finally {
    await cleanup();
    cleaning = undefined;
    current = { fakes: [], gatewayStarting: undefined, gateway: undefined, client: undefined };
  }
}

// --- one backend count -------------------------------------------------------------------------

/** Starts a fake per spec ({name, stepDelayMs, weight}) and a gateway over them, warms up, runs the batch. */
async function measure(specs) {
  const count = specs.length;
  const names = specs.map((spec) => spec.name);
  for (const spec of specs) current.fakes.push(await startFakeComfy({ port: 0, stepDelayMs: spec.stepDelayMs }));
  const backends = specs.map((spec, i) => ({ name: spec.name, url: current.fakes[i].url, weight: spec.weight }));
  const started = performance.now();
  current.gatewayStarting = startGateway({
    comfyUrl: current.fakes[0].url,
    vars: {
      COMFYUI_BACKENDS: JSON.stringify(backends),
      COMFY_MCP_WAIT_SECONDS: String(WAIT_SECONDS),
      COMFY_MCP_HEALTH_SECONDS: "1",
    },
  });
  current.gateway = await current.gatewayStarting;
  current.client = await connectV2(current.gateway.mcpUrl);
  const client = current.client;
  const ready = await untilUp(client, names);
  log(
    `  ${count} backend${count === 1 ? "" : "s"}: gateway ${current.gateway.url} ready in ${fmt((performance.now() - started) / 1000, 1)} s, backends up after ${fmt(ready / 1000, 1)} s`,
  );

  // Warm-up: one job pinned to each backend, untimed.
  const warm = await Promise.all(
    names.map((name, i) => runJob(client, { prompt: `warm-up ${name}`, seed: 1_000_000 + i, backend: name })),
  );
  const warmFailures = warm.filter((job) => job.problem).map((job) => `warm-up: ${job.problem}`);
  if (warmFailures.length > 0) log(`  [!] ${warmFailures.join("; ")}`);

  // The batch: every job at once.
  progress(`${count} backend(s): ${opts.jobs} jobs running`);
  const t0 = performance.now();
  const jobs = await Promise.all(
    Array.from({ length: opts.jobs }, (_, i) => runJob(client, { prompt: `pool scaling job ${i}`, seed: 1 + i })),
  );
  const wallMs = performance.now() - t0;
  progressDone();
  // Ctrl-C closed the gateway under the calls: their failures are not results.
  if (bench.interrupted) throw new Error("interrupted");

  const perBackend = Object.fromEntries(names.map((name) => [name, 0]));
  const failures = [];
  for (const job of jobs) {
    if (job.problem) failures.push(job.problem);
    else perBackend[job.backend] = (perBackend[job.backend] ?? 0) + 1;
  }
  if (failures.length > 0) {
    log(`  [!] ${failures.length} of ${opts.jobs} jobs did not complete:`);
    for (const failure of failures.slice(0, 10)) log(`      ${failure}`);
    log(`  gateway log tail:\n${current.gateway.logs().slice(-3000)}`);
  }
  return {
    backends: count,
    weights: specs.map((spec) => spec.weight),
    wallMs,
    completed: jobs.length - failures.length,
    failures,
    perBackend,
  };
}

/**
 * One generate_image call; if the gateway hands back an open handle (the batch outlasted the
 * wait), follows it with get_job until it is terminal. Returns { backend } or { problem }.
 */
async function runJob(client, args) {
  try {
    let result = await client.call(
      "generate_image",
      { ...IMAGE, ...args, wait_seconds: WAIT_SECONDS },
      { timeout: 120_000 },
    );
    for (;;) {
      if (result.isError) return { problem: `seed ${args.seed}: ${text(result).slice(0, 300)}` };
      const job = result.structuredContent;
      if (job?.status === "completed") return { backend: job.backend ?? "(none)" };
      if (TERMINAL.includes(job?.status))
        return { problem: `seed ${args.seed}: ${job.status}: ${job.message ?? ""}`.slice(0, 300) };
      result = await client.call(
        "get_job",
        { prompt_id: job.job_id, wait_seconds: WAIT_SECONDS },
        { timeout: 120_000 },
      );
    }
  } catch (error) {
    return { problem: `seed ${args.seed}: ${error?.message ?? error}` };
  }
}

/** Polls list_backends until every named backend is `up`; returns how long that took (ms). */
async function untilUp(client, names) {
  const started = performance.now();
  let last;
  while (performance.now() - started < READY_TIMEOUT_MS) {
    const result = await client.call("list_backends", {});
    last = result.isError ? text(result) : result.structuredContent?.backends;
    if (!result.isError && names.every((name) => last?.find((b) => b.name === name)?.state === "up"))
      return performance.now() - started;
    await sleep(250);
  }
  throw new Error(`backends not all up after ${READY_TIMEOUT_MS} ms: ${JSON.stringify(last)?.slice(0, 1000)}`);
}

// --- report -------------------------------------------------------------------------------------

function report(runs, mixed) {
  const base = runs.find((run) => run.backends === 1);
  const rows = runs.map((run) => {
    const speedup = base && run.wallMs > 0 ? base.wallMs / run.wallMs : NaN;
    return { ...run, jobsPerSecond: run.completed / (run.wallMs / 1000), speedup, efficiency: speedup / run.backends };
  });

  log();
  log(
    `  ${"backends".padStart(8)} ${"wall s".padStart(8)} ${"jobs/s".padStart(8)} ${"speed-up".padStart(9)} ${"efficiency".padStart(10)}  jobs per backend`,
  );
  for (const row of rows) {
    const spread = Object.entries(row.perBackend)
      .map(([name, n]) => `${name}:${n}`)
      .join(" ");
    log(
      `  ${String(row.backends).padStart(8)} ${fmt(row.wallMs / 1000, 2).padStart(8)} ${fmt(row.jobsPerSecond, 2).padStart(8)} ` +
        `${times(row.speedup).padStart(9)} ${pct(row.efficiency).padStart(10)}  ${spread}${row.failures.length ? `  (${row.failures.length} failed)` : ""}`,
    );
  }
  log(
    `  (speed-up = 1-backend wall time / this wall time; efficiency = speed-up / backends; ideal ${fmt((opts.jobs * opts.jobMs) / 1000, 1)} s / backends)`,
  );
  const failed = rows.reduce((n, row) => n + row.failures.length, 0);
  if (failed > 0) log(`  [!] ${failed} jobs failed: the figures above do not describe a clean run`);
  // The mixed pair's ideal: both busy until the end, a at 1 job per job-ms, b at 1 per 3 job-ms.
  const ideal = (opts.jobs * opts.jobMs) / (1 + 1 / SLOW_FACTOR);
  log();
  log(`  unequal machines: b is ${SLOW_FACTOR}x slower than a; ideal wall ${fmt(ideal / 1000, 2)} s`);
  log(`  ${"weights a:b".padStart(12)} ${"wall s".padStart(8)} ${"vs ideal".padStart(9)}  jobs per backend`);
  for (const run of mixed) {
    const spread = Object.entries(run.perBackend)
      .map(([name, n]) => `${name}:${n}`)
      .join(" ");
    log(
      `  ${run.weights.join(":").padStart(12)} ${fmt(run.wallMs / 1000, 2).padStart(8)} ${times(run.wallMs / ideal).padStart(9)}  ${spread}${run.failures.length ? `  (${run.failures.length} failed)` : ""}`,
    );
  }
  const [even, weighted] = mixed;
  log();
  log(
    `scaling: ${rows
      .filter((row) => row.backends > 1)
      .map((row) => `${row.backends} backends ${times(row.speedup)}`)
      .join(", ")}; ` + `unequal pair ${SLOW_FACTOR}:1 weights ${times(even.wallMs / weighted.wallMs)} faster than 1:1`,
  );

  if (opts.json) {
    const round = (value, digits = 3) =>
      Number.isFinite(value) ? Math.round(value * 10 ** digits) / 10 ** digits : null;
    log(
      JSON.stringify({
        jobs: opts.jobs,
        job_ms: opts.jobMs,
        runs: rows.map((row) => ({
          backends: row.backends,
          wall_s: round(row.wallMs / 1000),
          jobs_per_s: round(row.jobsPerSecond),
          speedup: round(row.speedup),
          efficiency: round(row.efficiency),
          per_backend: row.perBackend,
          failures: row.failures.length,
        })),
        mixed: mixed.map((run) => ({
          weights: run.weights,
          wall_s: round(run.wallMs / 1000),
          per_backend: run.perBackend,
          failures: run.failures.length,
        })),
      }),
    );
  }
}

const text = (result) => result?.content?.find((c) => c.type === "text")?.text ?? "";

function fmt(value, digits) {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

function times(value) {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : "n/a";
}

function pct(value) {
  return Number.isFinite(value) ? `${(value * 100).toFixed(0)}%` : "n/a";
}

// --- plumbing -----------------------------------------------------------------------------------

function readOptions() {
  const { values } = parseArgs({
    options: {
      jobs: { type: "string", default: "30" },
      "job-ms": { type: "string", default: "400" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log("usage: node bench/pool-scaling.mjs [--jobs 30] [--job-ms 400] [--json]");
    process.exit(0);
  }
  return { jobs: integerOption(values, "jobs", 1), jobMs: integerOption(values, "job-ms", 0), json: values.json };
}

/** Idempotent per backend count: runs between counts, from `finally` and from SIGINT. */
function cleanup() {
  const run = current;
  cleaning ??= (async () => {
    await run.client?.close().catch(() => undefined);
    // Interrupted during start-up: wait for the handle, or wrangler would outlive us.
    const started = run.gateway ?? (await run.gatewayStarting?.catch(() => undefined));
    await started?.stop().catch(() => undefined);
    await Promise.all(run.fakes.map((fake) => fake.close().catch(() => undefined)));
  })();
  return cleaning;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
