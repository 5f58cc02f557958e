// Jobs of realistic length, end to end over wrangler dev with both SDK generations at once: a 20 s
// job whose VAE decode is silent for 15 s, and a 2-minute job that outlasts one call's wait. Two fake
// ComfyUIs ("v1" and "v2") sit behind one gateway so the two clients' jobs run side by side, each
// pinned to its own GPU. Reconciliation runs every 300 s here: only ComfyUI's events can complete a
// job in time, and each test asserts that they did (completed_via: event), on one WebSocket
// connection for the whole job, with the result in the client's hands within 100 ms of ComfyUI's
// finish and no progress silence over 10 s. (On a real ComfyUI 0.3.64 the socket died 5 s after it
// opened, and such jobs completed seconds late through the safety net: issue #12.)
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfy } from "../fake-comfyui/server.mjs";
import { connectV1, connectV2 } from "./clients.mjs";
import { startGateway } from "./gateway.mjs";

const NOTICE_MS = 100;
const MAX_PROGRESS_GAP_MS = 10_000;
const SDKS = [
  ["v1", connectV1],
  ["v2", connectV2],
];
const now = () => performance.timeOrigin + performance.now();

/** @type {Record<string, import("../fake-comfyui/server.mjs").FakeComfy>} */
const fakes = {};
/** @type {Record<string, import("./clients.mjs").TestClient>} */
const clients = {};
let gateway;

beforeAll(async () => {
  for (const [name] of SDKS) fakes[name] = await startFakeComfy({ port: 0 });
  gateway = await startGateway({
    comfyUrl: fakes.v1.url,
    vars: {
      COMFYUI_BACKENDS: JSON.stringify(SDKS.map(([name]) => ({ name, url: fakes[name].url }))),
      COMFY_MCP_RECONCILE_SECONDS: "300",
    },
  });
  for (const [name, connect] of SDKS) clients[name] = await connect(gateway.mcpUrl);
});

afterAll(async () => {
  await Promise.all(Object.values(clients).map((client) => client.close().catch(() => undefined)));
  await gateway?.stop();
  await Promise.all(Object.values(fakes).map((fake) => fake.close().catch(() => undefined)));
});

afterEach(({ task }) => {
  if (task.result?.state === "fail" && gateway)
    console.error(`gateway log tail (${task.name}):\n${gateway.logs().slice(-4000)}`);
});

/**
 * One tool call with a progress token: when each notification arrived (from the call's start to its
 * result, so silence at either end counts too) and when the result did.
 */
async function timedCall(client, name, args) {
  const marks = [now()];
  const messages = [];
  const result = await client.call(name, args, {
    onprogress: (progress) => {
      marks.push(now());
      messages.push(progress.message);
    },
    timeout: 120_000,
    resetTimeoutOnProgress: true,
  });
  const receivedAt = now();
  marks.push(receivedAt);
  const gaps = marks.slice(1).map((at, i) => at - marks[i]);
  return { result, receivedAt, longestGap: Math.max(...gaps), messages };
}

/** The job's WebSocket connections on its fake: by the clientId it was submitted with. */
function connectionsOf(fake, promptId) {
  const clientId = fake.prompts.get(promptId)?.client_id;
  return { clientId, ...(fake.connections.get(clientId) ?? { opened: 0, closed: 0 }) };
}

describe("long jobs stay live (reconcile every 300 s: events only)", () => {
  it("a 20 s job with a 15 s silent node: one socket, completed by event within 100 ms, progress never silent over 10 s (SDK v1 and v2 at once)", async () => {
    for (const [name] of SDKS) fakes[name].setTiming({ stepDelayMs: 250, nodeDelayMsByClass: { VAEDecode: 15_000 } });
    const runs = await Promise.all(
      SDKS.map(async ([name]) => {
        const before = new Map(fakes[name].connections);
        const call = await timedCall(clients[name], "generate_image", {
          prompt: `a lighthouse at dusk (${name})`,
          width: 64,
          height: 64,
          steps: 20,
          backend: name,
          wait_seconds: 45,
        });
        return { name, before, ...call };
      }),
    );
    for (const { name, before, result, receivedAt, longestGap, messages } of runs) {
      const job = result.structuredContent;
      expect(result.isError, `${name}: ${JSON.stringify(job)?.slice(0, 500)}`).toBeFalsy();
      expect(job.status).toBe("completed");
      expect(job.completed_via).toBe("event");
      const fake = fakes[name];
      const run = fake.prompts.get(job.prompt_id);
      expect(run.finishedAt - run.startedAt, `${name}: the job really took ~20 s`).toBeGreaterThan(19_000);
      const notice = receivedAt - fake.finishTimes.get(job.prompt_id);
      expect(notice, `${name}: completion notice`).toBeLessThanOrEqual(NOTICE_MS);
      expect(longestGap, `${name}: longest progress gap`).toBeLessThanOrEqual(MAX_PROGRESS_GAP_MS);
      expect(
        messages.some((m) => /VAEDecode.*s elapsed/.test(m)),
        `${name}: heartbeat during the silent node`,
      ).toBe(true);
      const connections = connectionsOf(fake, job.prompt_id);
      const earlier = before.get(connections.clientId) ?? { opened: 0, closed: 0 };
      expect(
        connections.opened - earlier.opened,
        `${name}: WebSocket connections opened during the job`,
      ).toBeLessThanOrEqual(1);
      expect(connections.opened, `${name}: the job's clientId had a socket`).toBeGreaterThanOrEqual(1);
      expect(connections.closed - earlier.closed, `${name}: WebSocket connections closed during the job`).toBe(0);
    }
  }, 90_000);

  it("a 2-minute job outlasts a 45 s wait: the handle comes back, then get_job(wait_seconds) gets the result by event (SDK v1 and v2 at once)", async () => {
    for (const [name] of SDKS) fakes[name].setTiming({ stepDelayMs: 1_000, nodeDelayMsByClass: { VAEDecode: 60_000 } });
    const runs = await Promise.all(
      SDKS.map(async ([name]) => {
        const before = new Map(fakes[name].connections);
        const started = now();
        const first = await timedCall(clients[name], "generate_image", {
          prompt: `a long exposure (${name})`,
          width: 64,
          height: 64,
          steps: 60,
          backend: name,
          wait_seconds: 45,
        });
        const handle = first.result.structuredContent;
        const calls = [first];
        let last = first;
        while (["submitting", "queued", "running"].includes(last.result.structuredContent?.status)) {
          if (now() - started > 170_000) break;
          last = await timedCall(clients[name], "get_job", { prompt_id: handle.prompt_id, wait_seconds: 55 });
          calls.push(last);
        }
        return { name, before, started, handle, first, last, calls };
      }),
    );
    for (const { name, before, started, handle, first, last, calls } of runs) {
      expect(first.result.isError, name).toBeFalsy();
      expect(handle.status, `${name}: the first call returns a job handle`).toBe("running");
      expect(first.receivedAt - started, `${name}: ...after its 45 s wait`).toBeGreaterThan(44_000);
      expect(first.receivedAt - started).toBeLessThan(50_000);
      const job = last.result.structuredContent;
      expect(job.status, name).toBe("completed");
      expect(job.completed_via, name).toBe("event");
      expect(calls.length, `${name}: generate_image + get_job calls`).toBeGreaterThanOrEqual(2);
      const fake = fakes[name];
      const run = fake.prompts.get(job.prompt_id);
      expect(run.finishedAt - run.startedAt, `${name}: the job really took ~2 min`).toBeGreaterThan(115_000);
      expect(last.receivedAt - fake.finishTimes.get(job.prompt_id), `${name}: completion notice`).toBeLessThanOrEqual(
        NOTICE_MS,
      );
      for (const call of calls)
        expect(call.longestGap, `${name}: longest progress gap`).toBeLessThanOrEqual(MAX_PROGRESS_GAP_MS);
      const connections = connectionsOf(fake, job.prompt_id);
      const earlier = before.get(connections.clientId) ?? { opened: 0, closed: 0 };
      expect(connections.opened, `${name}: the job's clientId had a socket`).toBeGreaterThanOrEqual(1);
      expect(connections.opened - earlier.opened, `${name}: no reconnect during the job`).toBeLessThanOrEqual(1);
      expect(connections.closed - earlier.closed, `${name}: the job's socket never closed`).toBe(0);
    }
  }, 200_000);
});
