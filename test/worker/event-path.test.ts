// The event path alone: this project runs the studio with reconciliation every 300 s (vitest.config.ts,
// project "worker-events"), so no safety net can complete a job here. Each job must finish through
// ComfyUI's WebSocket events, within moments of the fake's finish, on the socket it was submitted
// under, whatever the fake does that the real ComfyUI does too: long silent nodes, dropped and
// idle-closed sockets, history that lags the done event, an answer to POST /prompt that comes after
// the job finished, binary preview frames.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import type { JobView, SubmitRequest } from "../../src/studio/records";
import type { WatchEvent } from "../../src/studio/studio";
import { imageJob } from "../support/image-job";

const fakeUrl = `http://127.0.0.1:${inject("comfyPort")}`;
/** ComfyUI's finish (history written, done event sent) to the studio's final line. */
const NOTICE_MS = 200;

function newStudio(name = `events-${crypto.randomUUID()}`) {
  return env.STUDIO.get(env.STUDIO.idFromName(name));
}

function request(overrides: Record<string, unknown> = {}): SubmitRequest {
  return imageJob({ steps: 10, width: 64, height: 64, ...overrides });
}

async function control(path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${fakeUrl}/__fake/${path}`, {
    method: body === undefined ? "GET" : "POST",
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { "Content-Type": "application/json" },
  });
  expect(response.ok, `fake ${path}`).toBe(true);
  return response.json();
}

type Connections = Record<string, { opened: number; closed: number; open: number }>;
type Fired = Record<string, number>;

/** Submits, follows the watch stream to its end, and measures the notice against the fake's finish. */
async function run(overrides: Record<string, unknown> = {}, studio = newStudio()) {
  const submitting = studio.submit(request(overrides));
  const submitted = await submitting;
  expect(submitted.ok, JSON.stringify(submitted)).toBe(true);
  const id = submitted.ok ? submitted.job.job_id : "";
  const events: WatchEvent[] = [];
  let job: JobView | undefined = submitted.ok && submitted.job.status === "completed" ? submitted.job : undefined;
  let heardAt = Date.now();
  if (!job) {
    const reader = (await studio.watch(id)).pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    while (!job) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (let at = buffer.indexOf("\n"); at >= 0; at = buffer.indexOf("\n")) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 1);
        if (!line) continue; // keepalive
        const event = JSON.parse(line) as WatchEvent;
        events.push(event);
        if (event.type === "final") {
          job = event.job;
          heardAt = Date.now();
        }
      }
    }
  }
  const finished = ((await control("finish-times")) as Record<string, number>)[id];
  const prompt = ((await control("state")) as { prompts: Record<string, { client_id: string }> }).prompts[id];
  return { studio, id, job, events, notice: finished === undefined ? Number.NaN : heardAt - finished, prompt };
}

afterEach(async () => {
  await control("faults", { reset: true });
  await control("timing", { nodeDelayMs: 1, stepDelayMs: 5, nodeDelayMsByClass: {} });
});

describe("the event path alone (reconcile every 300 s)", () => {
  it("completes a job from its WebSocket events within moments of ComfyUI's finish, then keeps ComfyUI's own history entry", async () => {
    const { job, notice, studio } = await run();
    expect(job?.status).toBe("completed");
    expect(job?.completed_via).toBe("event");
    expect(job?.assets[0]).toMatchObject({ width: 64, height: 64, mime_type: "image/png" });
    expect(job?.assets[0]?.bytes_size).toBeGreaterThan(0);
    expect(notice).toBeLessThanOrEqual(NOTICE_MS);
    // Settled from what the socket heard; the provenance record is then ComfyUI's own entry.
    let history: { prompt?: unknown; status?: { status_str?: string } } | null = null;
    for (let i = 0; i < 40 && !history?.prompt; i++) {
      const found = await studio.assetProvenance(job!.assets[0]!.asset_id);
      history = found?.history ? JSON.parse(found.history) : null;
      if (!history?.prompt) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(Array.isArray(history?.prompt), "ComfyUI's history entry replaces the heard one").toBe(true);
    expect(history?.status?.status_str).toBe("success");
  });

  it("keeps one socket through a 6 s silent node: one connection for the job's clientId, progress to the end", async () => {
    // Longer than the 5 s connect timeout that used to stay attached to the upgraded socket.
    await control("timing", { nodeDelayMsByClass: { VAEDecode: 6_000 } });
    const before = (await control("connections")) as Connections;
    const { job, notice, prompt, events } = await run();
    const after = (await control("connections")) as Connections;
    expect(job?.completed_via).toBe("event");
    expect(notice).toBeLessThanOrEqual(NOTICE_MS);
    const mine = after[prompt!.client_id];
    const earlier = before[prompt!.client_id] ?? { opened: 0, closed: 0 };
    expect(mine && mine.opened - earlier.opened).toBe(1);
    expect(mine && mine.closed - earlier.closed).toBe(0);
    expect(events.some((e) => e.type === "progress" && /VAEDecode/.test(e.progress.message))).toBe(true);
  }, 20_000);

  it("a socket dropped mid-job reconnects under the same clientId and the job still completes by event", async () => {
    await control("timing", { nodeDelayMsByClass: { VAEDecode: 1_500 } });
    await control("faults", { dropSocketsAfterEvents: 3 });
    const { job, notice, prompt } = await run();
    const fired = (await control("faults-fired")) as Fired;
    expect(fired.dropSockets).toBeGreaterThan(0);
    expect(job?.completed_via).toBe("event");
    expect(notice).toBeLessThanOrEqual(NOTICE_MS);
    const connections = (await control("connections")) as Connections;
    expect(connections[prompt!.client_id]?.opened).toBeGreaterThanOrEqual(2);
  });

  it("a socket ComfyUI's side closes as idle during a silent node is reopened under the same clientId", async () => {
    await control("timing", { nodeDelayMsByClass: { VAEDecode: 3_000 } });
    await control("faults", { idleSocketCloseMs: 1_000 });
    const { job, notice } = await run();
    expect(((await control("faults-fired")) as Fired).idleCloses).toBeGreaterThan(0);
    expect(job?.completed_via).toBe("event");
    expect(notice).toBeLessThanOrEqual(NOTICE_MS);
  });

  it("history that lags the done event by 600 ms still completes by event (the history retries)", async () => {
    await control("faults", { historyLagMs: 600 });
    const { job, notice } = await run();
    // The provenance read follows the result by AFTER_RESULT_MS, inside the lag: it meets the lag.
    await vi.waitFor(async () =>
      expect(((await control("faults-fired")) as Fired).laggedHistoryReads).toBeGreaterThan(0),
    );
    expect(job?.completed_via).toBe("event");
    expect(job?.assets).toHaveLength(1);
    expect(notice).toBeLessThanOrEqual(600 + 2 * NOTICE_MS);
  });

  it("a job that finishes before POST /prompt is answered completes by event, registered once", async () => {
    await control("faults", { answerAfterFinish: true });
    const { job, studio, id } = await run();
    expect(((await control("faults-fired")) as Fired).lateAnswers).toBeGreaterThan(0);
    expect(job?.status).toBe("completed");
    expect(job?.completed_via).toBe("event");
    expect((await studio.getJob(id))?.assets).toHaveLength(1);
  });

  it("binary preview frames between sampler steps count as progress and do not disturb the events", async () => {
    await control("faults", { previewFrames: true });
    const { job, events } = await run({ steps: 6 });
    expect(((await control("faults-fired")) as Fired).previewFrames).toBeGreaterThan(0);
    expect(job?.completed_via).toBe("event");
    expect(events.some((e) => e.type === "progress" && (e.progress.previews ?? 0) > 0)).toBe(true);
  });

  it("the next job reuses the open socket; the alarm closes it a minute after the last job", async () => {
    const studio = newStudio();
    const first = await run({}, studio);
    const clientId = first.prompt!.client_id;
    const opened = ((await control("connections")) as Connections)[clientId]!.opened;
    const second = await run({}, studio);
    expect(second.prompt!.client_id).toBe(clientId);
    expect(second.job?.completed_via).toBe("event");
    let now = ((await control("connections")) as Connections)[clientId]!;
    expect(now.opened, "no new connection for the second job").toBe(opened);
    expect(now.open).toBe(1);
    // A minute later (moved back rather than waited for), the alarm lets the idle socket go.
    await runInDurableObject(studio, (instance) => {
      const endpoints = (instance as unknown as { endpoints: { all(): Array<{ lastBusyAt: number }> } }).endpoints;
      for (const endpoint of endpoints.all()) endpoint.lastBusyAt -= 61_000;
    });
    await runDurableObjectAlarm(studio);
    for (let i = 0; i < 40 && now.open > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      now = ((await control("connections")) as Connections)[clientId]!;
    }
    expect(now.open, "closed once idle").toBe(0);
  });
});
