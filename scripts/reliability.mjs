// `npm run reliability`: every reliability scenario of issues #7 and #8 with bigger N, end to end through
// wrangler dev and the fake ComfyUI (loopback only), then ONE markdown table, the load and failover
// figures, and the soak's table (test/e2e/soak.mjs: 3 users, jobs of 30 s–3 min, a no-fault phase and a
// random-socket-drop phase, ≥ 10 minutes of submissions by default).
// The recovery scenarios run twice: with the fast timings the tests use (reconcile 1 s; pool health 1 s,
// grace 2 s) and with the gateway's production defaults (reconcile 5 s, health 10 s, grace 30 s).
// Bounded loops; gateways and fakes are always stopped. Exit code 1 if anything failed or was lost.
//
//   npm run reliability                      # everything, soak of 10 minutes (≈ 35 min in all)
//   npm run reliability -- --minutes 20      # a longer soak
//   npm run reliability -- --quick           # smaller N, a 2-minute soak of jobs ten times shorter
//   npm run reliability -- --soak-only       # only the soak (with --minutes / --quick)
//   npm run reliability -- --no-soak         # everything but the soak
import { parseArgs } from "node:util";
import {
  backendKilledUnderLoad,
  clean,
  clientDisconnect,
  comfyFaults,
  comfyRestart,
  DEFAULT_VARS,
  load,
  startHarness,
  startPoolHarness,
  studioRestart,
  table,
  websocketDrops,
} from "../test/e2e/reliability-scenarios.mjs";
import { soak, soakTable } from "../test/e2e/soak.mjs";

const { values: options } = parseArgs({
  options: {
    minutes: { type: "string" },
    quick: { type: "boolean", default: false },
    "soak-only": { type: "boolean", default: false },
    "no-soak": { type: "boolean", default: false },
  },
});
const quick = options.quick;
const minutes = Number(options.minutes ?? (quick ? 2 : 10));
if (!(minutes > 0)) {
  process.stderr.write("reliability: --minutes must be a positive number\n");
  process.exit(2);
}
const runSoak = !options["no-soak"];
const runScenarios = !options["soak-only"];

const USERS = ["u1", "u2", "u3", "u4"];
const results = [];
const figures = [];
const failovers = [];
let soakResult;

async function withHarness(harnessOptions, body) {
  const harness = await startHarness(harnessOptions);
  try {
    await body(harness);
  } finally {
    await harness.stop();
  }
}

async function step(name, fn) {
  const started = Date.now();
  process.stderr.write(`… ${name}\n`);
  try {
    const result = await fn();
    results.push(result);
    process.stderr.write(
      `  ${result.passed}/${result.runs} passed, ${result.lost_items} lost, ${result.faults_fired} faults fired, ${result.crashes} crashes, ${Date.now() - started} ms${result.notes ? ` — ${result.notes}` : ""}\n`,
    );
    return result;
  } catch (error) {
    results.push({
      scenario: name,
      runs: 1,
      passed: 0,
      lost_items: 0,
      faults_fired: 0,
      crashes: 0,
      max_recovery_ms: 0,
      notes: `crashed: ${error.message}`,
    });
    process.stderr.write(`  crashed: ${error.stack}\n`);
  }
}

// The scenarios take about 10 minutes; the soak its minutes plus the jobs in flight at each phase end.
const budgetMinutes = (runScenarios ? 25 : 0) + (runSoak ? minutes * 1.5 + 15 : 0);
const overall = setTimeout(() => {
  process.stderr.write(`reliability: gave up after ${budgetMinutes} minutes\n`);
  process.exit(2);
}, budgetMinutes * 60_000);
overall.unref();

try {
  if (runScenarios) {
    const n = (full, small) => (quick ? small : full);
    // Fault scenarios: a fake whose jobs take a while (30 ms per sampler step), fast timings.
    await withHarness({ stepDelayMs: 30, users: USERS }, async (harness) => {
      await step("WebSocket dropped mid-job", () => websocketDrops(harness, { jobs: n(10, 3) }));
      await step("ComfyUI restarted mid-job", () => comfyRestart(harness, { runs: n(3, 1) }));
      await step("ComfyUI unreachable / 500 / slow / Access", () => comfyFaults(harness, { rounds: n(2, 1) }));
      await step("Client disconnects mid-wait", () => clientDisconnect(harness, { runs: n(4, 2) }));
      await step("Studio restarted mid-job", () => studioRestart(harness, { runs: n(2, 1) }));
    });
    // The recovery scenarios again, with the gateway's production timings.
    await withHarness({ stepDelayMs: 30, users: USERS, vars: DEFAULT_VARS }, async (harness) => {
      await step("WebSocket dropped mid-job (defaults)", () => websocketDrops(harness, { jobs: n(5, 2) }));
      await step("ComfyUI restarted mid-job (defaults)", () => comfyRestart(harness, { runs: n(2, 1) }));
      await step("Client disconnects mid-wait (defaults)", () => clientDisconnect(harness, { runs: 2 }));
      await step("Studio restarted mid-job (defaults)", () => studioRestart(harness, { runs: 1 }));
    });
    // Load: a fake answering fast.
    await withHarness({ stepDelayMs: 1, users: USERS, waitSeconds: 55 }, async (harness) => {
      const small = await step("Load", () => load(harness, { users: USERS, perUser: 6, steps: 1 }));
      if (small?.figures) figures.push(small.figures);
      if (!quick) {
        const bigger = await step("Load", () => load(harness, { users: USERS, perUser: 25, steps: 1 }));
        if (bigger?.figures) figures.push(bigger.figures);
      }
    });
    // A pool of three backends, one killed in the middle of each burst: fast timings, then the defaults.
    for (const defaults of [false, true]) {
      const pool = await startPoolHarness({ stepDelayMs: 20, defaults });
      try {
        const runs = defaults ? 1 : n(3, 1);
        const result = await step(`Backend killed under load${defaults ? " (defaults)" : ""}`, () =>
          backendKilledUnderLoad(pool, { runs, jobs: 30 }),
        );
        if (result?.figures) failovers.push({ ...result, timings: pool.timings });
      } finally {
        await pool.stop();
      }
    }
  }
  if (runSoak) {
    process.stderr.write(
      `… soak: ${minutes} minutes of submissions${quick ? " (quick: jobs ten times shorter)" : ""}\n`,
    );
    try {
      soakResult = await soak({ minutes, quick, log: (line) => process.stderr.write(`${line}\n`) });
    } catch (error) {
      soakResult = { phases: [], problems: [`crashed: ${error.message}`], ok: false };
      process.stderr.write(`  soak crashed: ${error.stack}\n`);
    }
  }
} finally {
  clearTimeout(overall);
}

if (results.length > 0) {
  console.log(table(results));
  console.log();
}
for (const f of figures) {
  console.log(
    `Load ${f.users} users × ${f.per_user} concurrent generate_image (${f.completed} of ${f.submitted} jobs completed and checked, fake ComfyUI at 1 ms/step): ` +
      `throughput ${f.throughput_jobs_per_s} jobs/s over ${f.wall_ms} ms; tool call latency p50 ${f.call_p50_ms} ms, p99 ${f.call_p99_ms} ms; ` +
      `completion notice latency (ComfyUI finished → client has the result) p50 ${f.notice_p50_ms} ms, p99 ${f.notice_p99_ms} ms (${f.notices_measured} measured); ` +
      `completed via ${JSON.stringify(f.completed_via)}.`,
  );
}
for (const failover of failovers) {
  console.log(
    `Backend killed under load (${failover.timings}): ${failover.runs} burst(s) of 30 generate_image jobs (resubmit_if_backend_lost, 400 ms each) over 3 fake backends, ` +
      `one killed as soon as it ran one: ${failover.figures.jobs} completed, ${failover.figures.moved} moved to another backend; slowest burst fully completed ` +
      `${failover.max_recovery_ms} ms after the kill.`,
  );
}
if (soakResult) {
  const p = soakResult.profile;
  console.log();
  if (p)
    console.log(
      `Soak (${soakResult.timings}): ${soakResult.users} users, one fake ComfyUI running one job at a time; ${p.stepDelayMs} ms per step, ` +
        `${p.minSteps}–${p.maxSteps} steps, VAEDecode silent for ${p.silentNodeMs / 1000} s; socket drops every ${p.dropEveryMs[0] / 1000}–${p.dropEveryMs[1] / 1000} s in the drop phase.`,
    );
  console.log(soakTable(soakResult));
  for (const problem of soakResult.problems) console.log(`\nsoak: ${problem}`);
}
const failed = results.filter((r) => !clean(r));
for (const r of failed) console.log(`\n${r.scenario}: ${r.notes}`);
process.exitCode = failed.length === 0 && (soakResult?.ok ?? true) ? 0 : 1;
