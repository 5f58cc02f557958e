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

/** Every run passed, nothing lost, recovery within the bound; notes shown on failure. */
function expectClean(result, maxRecoveryMs) {
  expect({ passed: result.passed, lost: result.lost_items, notes: result.notes }).toEqual({
    passed: result.runs,
    lost: 0,
    notes: expect.any(String),
  });
  expect(result.runs).toBeGreaterThan(0);
  expect(result.max_recovery_ms, result.notes).toBeLessThanOrEqual(maxRecoveryMs);
}

describe("reliability", () => {
  it("WebSocket dropped mid-job, three times: every job completes with its one asset", async () => {
    expectClean(await websocketDrops(harness, { jobs: 3 }), 15_000);
  });

  it("ComfyUI restarted mid-job: the job is lost with a message saying so, quickly; the next job works", async () => {
    const result = await comfyRestart(harness, { runs: 1 });
    expectClean(result, 10_000);
  });

  it("ComfyUI unreachable / 500 / slow / Access 302 / Access HTML: clear errors, no hung calls, /healthz answers, recovery", async () => {
    expectClean(await comfyFaults(harness), 10_000);
  });

  it("a client that disconnects mid-wait (abort, close): the job completes and is findable", async () => {
    expectClean(await clientDisconnect(harness, { runs: 2 }), 0);
  });

  it("wrangler dev restarted mid-job: the job completes afterwards, registered once", async () => {
    expectClean(await studioRestart(harness, { runs: 1 }), 40_000);
  });

  it("load: 3 users × 6 concurrent generations, nothing lost, duplicated or leaked, ordered", async () => {
    const result = await load(harness, { perUser: 6, steps: 1 });
    expectClean(result, 0);
    expect(result.figures.jobs).toBe(18);
  });
});
