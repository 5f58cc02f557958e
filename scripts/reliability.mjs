// `npm run reliability`: every reliability scenario of issues #7 and #8 with bigger N, end to end through
// wrangler dev and the fake ComfyUI (loopback only), then ONE markdown table and the load figures.
// Bounded loops; gateways and fakes are always stopped. Exit code 1 if anything failed or was lost.
import {
  backendKilledUnderLoad,
  clientDisconnect,
  comfyFaults,
  comfyRestart,
  load,
  startHarness,
  startPoolHarness,
  studioRestart,
  table,
  websocketDrops,
} from "../test/e2e/reliability-scenarios.mjs";

const USERS = ["u1", "u2", "u3", "u4"];
const results = [];
let figures;
let failover;

async function withHarness(options, body) {
  const harness = await startHarness(options);
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
      `  ${result.passed}/${result.runs} passed, ${result.lost_items} lost, ${Date.now() - started} ms${result.notes ? ` — ${result.notes}` : ""}\n`,
    );
    return result;
  } catch (error) {
    results.push({
      scenario: name,
      runs: 1,
      passed: 0,
      lost_items: 0,
      max_recovery_ms: 0,
      notes: `crashed: ${error.message}`,
    });
    process.stderr.write(`  crashed: ${error.stack}\n`);
  }
}

const overall = setTimeout(() => {
  process.stderr.write("reliability: gave up after 15 minutes\n");
  process.exit(2);
}, 15 * 60_000);
overall.unref();

try {
  // Fault scenarios: a fake whose jobs take a while (30 ms per sampler step).
  await withHarness({ stepDelayMs: 30, users: USERS }, async (harness) => {
    await step("WebSocket dropped mid-job", () => websocketDrops(harness, { jobs: 10 }));
    await step("ComfyUI restarted mid-job", () => comfyRestart(harness, { runs: 3 }));
    await step("ComfyUI unreachable / 500 / slow / Access", () => comfyFaults(harness, { rounds: 2 }));
    await step("Client disconnects mid-wait", () => clientDisconnect(harness, { runs: 4 }));
    await step("Studio restarted mid-job", () => studioRestart(harness, { runs: 2 }));
  });
  // Load: a fake answering fast.
  await withHarness({ stepDelayMs: 1, users: USERS, waitSeconds: 55 }, async (harness) => {
    const result = await step("Load", () => load(harness, { users: USERS, perUser: 6, steps: 1 }));
    figures = result?.figures;
    const bigger = await step("Load", () => load(harness, { users: USERS, perUser: 25, steps: 1 }));
    if (bigger?.figures) figures = [figures, bigger.figures].filter(Boolean);
  });
  // A pool of three backends, one killed in the middle of each burst.
  const pool = await startPoolHarness({ stepDelayMs: 20 });
  try {
    failover = await step("Backend killed under load", () => backendKilledUnderLoad(pool, { runs: 3, jobs: 30 }));
  } finally {
    await pool.stop();
  }
} finally {
  clearTimeout(overall);
}

console.log(table(results));
console.log();
for (const f of [figures ?? []].flat()) {
  console.log(
    `Load ${f.users} users × ${f.per_user} concurrent generate_image (${f.jobs} jobs, fake ComfyUI at 1 ms/step): ` +
      `throughput ${f.throughput_jobs_per_s} jobs/s over ${f.wall_ms} ms; tool call latency p50 ${f.call_p50_ms} ms, p99 ${f.call_p99_ms} ms; ` +
      `completion notice latency (ComfyUI finished → client has the result) p50 ${f.notice_p50_ms} ms, p99 ${f.notice_p99_ms} ms (${f.notices_measured} measured).`,
  );
}
if (failover?.figures) {
  console.log(
    `Backend killed under load: ${failover.runs} bursts of 30 generate_image jobs (resubmit_if_backend_lost, 400 ms each) over 3 fake backends, ` +
      `one killed as soon as it ran one: ${failover.figures.jobs} completed, ${failover.figures.moved} moved to another backend; slowest burst answered ` +
      `${failover.max_recovery_ms} ms after the kill (grace 2 s, reconcile 1 s).`,
  );
}
const notes = results.filter((r) => r.notes && (r.passed < r.runs || r.lost_items > 0));
for (const r of notes) console.log(`\n${r.scenario}: ${r.notes}`);
process.exitCode = results.every((r) => r.passed === r.runs && r.lost_items === 0) ? 0 : 1;
