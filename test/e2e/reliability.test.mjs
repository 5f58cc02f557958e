// Reliability under faults and load (issue #7), the fast subset: small N of every scenario in
// test/e2e/reliability-scenarios.mjs, end to end through wrangler dev and the fake ComfyUI.
// Zero lost items and bounded recovery are asserted. `npm run reliability` runs them bigger.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  clientDisconnect,
  comfyFaults,
  comfyRestart,
  load,
  startHarness,
  studioRestart,
  websocketDrops,
} from "./reliability-scenarios.mjs";

let harness;

beforeAll(async () => {
  harness = await startHarness({ stepDelayMs: 30, users: ["u1", "u2", "u3"] });
});

afterAll(async () => {
  await harness?.stop();
});

/** Every run passed, nothing lost, no crash in the gateway log (notes shown on failure). */
function expectNothingLost(result) {
  expect({ passed: result.passed, lost: result.lost_items, crashes: result.crashes, notes: result.notes }).toEqual({
    passed: result.runs,
    lost: 0,
    crashes: 0,
    notes: expect.any(String),
  });
}

/**
 * Every run passed, nothing lost, no crash in the gateway log, every injected fault fired (once per
 * run, unless `faults` says otherwise), and recovery within the bound; notes shown on failure.
 */
function expectClean(result, { maxRecoveryMs, faults = result.runs }) {
  expectNothingLost(result);
  expect(result.runs).toBeGreaterThan(0);
  expect(result.faults_fired, `faults that fired: ${result.notes}`).toBeGreaterThanOrEqual(faults);
  // A scenario that measures recovery measured something, within its bound.
  expect(result.max_recovery_ms, result.notes).toBeGreaterThan(0);
  expect(result.max_recovery_ms, result.notes).toBeLessThanOrEqual(maxRecoveryMs);
}

describe("reliability", () => {
  it("WebSocket dropped mid-job, three times: every drop fires, every job completes with its one asset", async () => {
    expectClean(await websocketDrops(harness, { jobs: 3 }), { maxRecoveryMs: 15_000 });
  });

  it("ComfyUI restarted mid-job: the job is lost with a message saying so, quickly; the next job works", async () => {
    expectClean(await comfyRestart(harness, { runs: 1 }), { maxRecoveryMs: 10_000 });
  });

  it("ComfyUI unreachable / 500 / slow / Access 302 / Access HTML: clear errors, no hung calls, /healthz answers, recovery", async () => {
    expectClean(await comfyFaults(harness), { maxRecoveryMs: 10_000 });
  });

  it("a client that disconnects mid-wait (abort, close): the call ends at once, the job completes and is findable", async () => {
    expectClean(await clientDisconnect(harness, { runs: 2 }), { maxRecoveryMs: 15_000 });
  });

  it("wrangler dev restarted mid-job: the job completes afterwards, registered once", async () => {
    expectClean(await studioRestart(harness, { runs: 1 }), { maxRecoveryMs: 40_000 });
  });

  it("load: 3 users × 6 concurrent generations, nothing lost, duplicated or leaked, ordered", async () => {
    const result = await load(harness, { perUser: 6, steps: 1 });
    expectNothingLost(result);
    expect(result.runs).toBe(3);
    // Counted from the jobs that passed every check, not from the calls made.
    expect(result.figures.completed, result.notes).toBe(18);
    expect(result.figures.notices_measured, "every result is matched to ComfyUI's finish time").toBe(18);
  });
});
