// The fake ComfyUI is only as good as its fidelity to the recordings: run its self-check (event
// orders, error bodies byte for byte, /view headers, faults) as part of the suite. Below it, the
// fake's slow-and-rude knobs: silent per-class node durations, connection counters, fault-fired
// counters and the fault modes a real ComfyUI behind a tunnel produces.
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { sdGraph } from "../fake-comfyui/graphs.mjs";
import { DEFAULT_FAULTS, startFakeComfy } from "../fake-comfyui/server.mjs";

// A plain `import WebSocket from "ws"` breaks under vitest; require it (as server.mjs does).
const WebSocket = createRequire(import.meta.url)("ws");

it("the fake ComfyUI passes its self-check against the recorded ComfyUI 0.3.64 samples", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ["test/fake-comfyui/selfcheck.mjs"], {
    timeout: 60_000,
  });
  expect(stdout).not.toMatch(/^FAIL/m);
  expect(stdout).toMatch(/selfcheck: all checks passed/);
});

it("the fake's CLI on a busy port says so in one line and exits 1, without a stack trace", async () => {
  const holder = await startFakeComfy({ port: 0 });
  try {
    const port = new URL(holder.url).port;
    const failed = await promisify(execFile)(process.execPath, ["test/fake-comfyui/cli.mjs", "--port", port], {
      timeout: 20_000,
    }).then(
      () => undefined,
      (error) => error,
    );
    expect(failed?.code).toBe(1);
    expect(failed.stderr.trim().split("\n")).toHaveLength(1);
    expect(failed.stderr).toMatch(new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use.*--port`));
    expect(failed.stderr).not.toMatch(/\n\s+at /);
  } finally {
    await holder.close();
  }
});

/** The SD1.5 txt2img graph (node 3 KSampler, 8 VAEDecode, 9 SaveImage), small and fast. */
const smallGraph = ({ seed = 1, steps = 2 } = {}) =>
  sdGraph({ seed, steps, width: 64, height: 64, prefix: "t/fake", text: `a cat ${seed}` });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** fetch + JSON. */
async function call(base, method, path, body) {
  const r = await fetch(base + path, {
    method,
    ...(body !== undefined && { body: JSON.stringify(body), headers: { "Content-Type": "application/json" } }),
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text };
}
const submit = (base, prompt, clientId) => call(base, "POST", "/prompt", { prompt, client_id: clientId });

/**
 * A WebSocket recording every frame with its arrival time: text frames parsed (`bin: false`),
 * binary frames as Buffers (`bin: true`).
 */
async function openWs(base, clientId) {
  const ws = new WebSocket(`${base.replace("http", "ws")}/ws${clientId ? `?clientId=${clientId}` : ""}`);
  /** @type {{at: number, bin: boolean, msg?: any, data?: Buffer}[]} */
  const frames = [];
  /** @type {(() => void)[]} */
  const waiters = [];
  ws.on("message", (data, bin) => {
    const at = performance.now();
    frames.push(bin ? { at, bin, data: Buffer.from(data) } : { at, bin, msg: JSON.parse(data.toString()) });
    for (const w of [...waiters]) w();
  });
  const closed = new Promise((r) => ws.once("close", (code) => r({ code, at: performance.now() })));
  await new Promise((res, rej) => {
    ws.once("open", res);
    ws.once("error", rej);
  });
  /** @returns {Promise<{at: number, msg: any}>} */
  const until = (pred, ms = 8000) =>
    new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`timeout; got ${texts().map((f) => f.msg.type)}`)), ms);
      const w = () => {
        const f = frames.find((x) => !x.bin && pred(x.msg));
        if (f) {
          clearTimeout(t);
          waiters.splice(waiters.indexOf(w), 1);
          res(/** @type {any} */ (f));
        }
      };
      waiters.push(w);
      w();
    });
  const texts = () => frames.filter((f) => !f.bin);
  const done = (pid, ms) =>
    until((m) => m.type === "executing" && m.data.node === null && m.data.prompt_id === pid, ms);
  return { ws, frames, texts, until, done, closed, close: () => ws.close() };
}

/** Poll until `fn()` is truthy (server-side bookkeeping after a client-side event). */
async function eventually(fn, ms = 3000) {
  const end = performance.now() + ms;
  while (!fn()) {
    if (performance.now() > end) throw new Error("condition never met");
    await sleep(10);
  }
}

describe("fake ComfyUI: slow and rude", () => {
  /** @type {import("../fake-comfyui/server.mjs").FakeComfy} */
  let fake;
  let B = "";
  beforeAll(async () => {
    fake = await startFakeComfy({ stepDelayMs: 5, nodeDelayMsByClass: { VAEDecode: 1500 } });
    B = fake.url;
  });
  afterAll(() => fake?.close());
  afterEach(() => {
    fake.setFaults(DEFAULT_FAULTS());
  });

  it("nodeDelayMsByClass: VAEDecode 1500 ms is silent on the socket and the job takes ≥ 1.5 s", async () => {
    const c = await openWs(B, "slow-vae");
    const t0 = performance.now();
    const r = await submit(B, smallGraph({ seed: 11 }), "slow-vae");
    const pid = r.json.prompt_id;
    const done = await c.done(pid);
    expect(done.at - t0).toBeGreaterThanOrEqual(1500);
    const frames = c.frames;
    const vae = frames.findIndex((f) => !f.bin && f.msg.type === "executing" && f.msg.data.node === "8");
    expect(vae).toBeGreaterThan(0);
    // The frame after `executing 8` comes only once the node is over.
    expect(frames[vae + 1].at - frames[vae].at).toBeGreaterThanOrEqual(1450);
    expect(frames[vae + 1].msg.type).toBe("progress_state");
    // Samplers keep their per-step progress.
    expect(c.texts().filter((f) => f.msg.type === "progress" && f.msg.data.prompt_id === pid)).toHaveLength(2);
    c.close();
  }, 10_000);

  it("setTiming / POST /__fake/timing: validated, answered, applied to the next job; a sampler class delay precedes its steps", async () => {
    expect((await call(B, "GET", "/__fake/timing")).json).toEqual({
      nodeDelayMs: 1,
      stepDelayMs: 5,
      nodeDelayMsByClass: { VAEDecode: 1500 },
    });
    const posted = await call(B, "POST", "/__fake/timing", { nodeDelayMsByClass: { KSampler: 300 }, stepDelayMs: 2 });
    expect(posted.json).toEqual({ nodeDelayMs: 1, stepDelayMs: 2, nodeDelayMsByClass: { KSampler: 300 } });
    expect((await call(B, "POST", "/__fake/timing", { stepDelayMs: -1 })).status).toBe(400);
    expect((await call(B, "POST", "/__fake/timing", { nope: 1 })).status).toBe(400);
    const c = await openWs(B, "timing");
    const r = await submit(B, smallGraph({ seed: 12, steps: 3 }), "timing");
    await c.done(r.json.prompt_id);
    const t = c.texts();
    const ks = t.find((f) => f.msg.type === "executing" && f.msg.data.node === "3");
    const steps = t.filter((f) => f.msg.type === "progress");
    expect(steps.map((f) => f.msg.data.value)).toEqual([1, 2, 3]);
    expect(steps[0].at - ks.at).toBeGreaterThanOrEqual(290);
    expect(fake.setTiming({ stepDelayMs: 5, nodeDelayMsByClass: { VAEDecode: 1500 } }).stepDelayMs).toBe(5);
    c.close();
  });

  it("an interrupt or restart() stops a job inside a long silent node promptly", async () => {
    fake.setTiming({ nodeDelayMsByClass: { VAEDecode: 20_000 } });
    try {
      const c = await openWs(B, "long");
      const r = await submit(B, smallGraph({ seed: 13 }), "long");
      await c.until((m) => m.type === "executing" && m.data.node === "8");
      const t0 = performance.now();
      await call(B, "POST", "/interrupt");
      const stop = await c.until((m) => m.type === "execution_interrupted");
      expect(stop.msg.data).toMatchObject({ prompt_id: r.json.prompt_id, node_id: "8", node_type: "VAEDecode" });
      expect(stop.at - t0).toBeLessThan(500);

      const c2 = await openWs(B, "long2");
      const r2 = await submit(B, smallGraph({ seed: 14 }), "long2");
      await c2.until((m) => m.type === "executing" && m.data.node === "8");
      fake.restart();
      fake.setTiming({ nodeDelayMsByClass: {} });
      const c3 = await openWs(B, "long3");
      const t1 = performance.now();
      const r3 = await submit(B, smallGraph({ seed: 15 }), "long3");
      const d3 = await c3.done(r3.json.prompt_id, 3000);
      expect(d3.at - t1).toBeLessThan(1000); // the old job did not keep the worker busy
      expect(fake.prompts.get(r2.json.prompt_id)?.status).toBe("lost");
      c3.close();
    } finally {
      fake.setTiming({ nodeDelayMsByClass: { VAEDecode: 1500 } });
    }
  }, 10_000);

  it("connections: a reconnect with the same clientId counts opened 2 / closed 1; no clientId counts under the sid", async () => {
    fake.resetCounters();
    const a = await openWs(B, "conn-1");
    a.close();
    await a.closed;
    const b = await openWs(B, "conn-1");
    await eventually(() => fake.connections.get("conn-1")?.closed === 1);
    expect(fake.connections.get("conn-1")).toEqual({ opened: 2, closed: 1 });
    const anon = await openWs(B, "");
    const sid = (await anon.until((m) => m.type === "status" && m.data.sid)).msg.data.sid;
    const served = (await call(B, "GET", "/__fake/connections")).json;
    expect(served["conn-1"]).toEqual({ opened: 2, closed: 1, open: 1 });
    expect(served[sid]).toEqual({ opened: 1, closed: 0, open: 1 });
    expect((await call(B, "GET", "/__fake/state")).json.connections["conn-1"]).toEqual(served["conn-1"]);
    // A copied Map is a snapshot: entries are replaced, never mutated.
    const before = new Map(fake.connections);
    fake.restart(); // closes every socket, keeps the counters
    await eventually(() => fake.connections.get("conn-1")?.closed === 2);
    expect(before.get("conn-1")).toEqual({ opened: 2, closed: 1 });
    expect(fake.connections.get(sid)).toEqual({ opened: 1, closed: 1 });
    expect((await call(B, "POST", "/__fake/reset-counters")).json).toEqual({ ok: true });
    expect((await call(B, "GET", "/__fake/connections")).json).toEqual({});
    b.close();
    anon.close();
  });

  it("dropSocketsAfterEvents: 0 (and null) drop nothing and clear an armed drop", async () => {
    fake.resetCounters();
    const c = await openWs(B, "nodrop");
    fake.setFaults({ dropSocketsAfterEvents: 0 });
    expect(fake.faults.dropSocketsAfterEvents).toBeNull();
    fake.setTiming({ nodeDelayMsByClass: {} });
    try {
      const r = await submit(B, smallGraph({ seed: 16 }), "nodrop");
      await c.done(r.json.prompt_id);
      fake.setFaults({ dropSocketsAfterEvents: 2 });
      expect(
        (await call(B, "POST", "/__fake/faults", { dropSocketsAfterEvents: null })).json.dropSocketsAfterEvents,
      ).toBe(null);
      const r2 = await submit(B, smallGraph({ seed: 17 }), "nodrop");
      await c.done(r2.json.prompt_id);
      expect(c.ws.readyState).toBe(WebSocket.OPEN);
      expect(fake.faultsFired.dropSockets).toBe(0);
      // …while a real count still drops, and is counted.
      fake.setFaults({ dropSocketsAfterEvents: 2 });
      const r3 = await submit(B, smallGraph({ seed: 18 }), "nodrop");
      await c.closed;
      expect(c.texts().filter((f) => f.msg.data?.prompt_id === r3.json.prompt_id)).toHaveLength(2);
      expect(fake.faultsFired.dropSockets).toBe(1);
      expect((await call(B, "GET", "/__fake/faults-fired")).json.dropSockets).toBe(1);
    } finally {
      fake.setTiming({ nodeDelayMsByClass: { VAEDecode: 1500 } });
    }
  });

  it("answerAfterFinish: POST /prompt is answered only after the done event, with history written", async () => {
    fake.resetCounters();
    fake.setTiming({ nodeDelayMsByClass: { VAEDecode: 300 } });
    try {
      const c = await openWs(B, "late");
      fake.setFaults({ answerAfterFinish: true });
      const pid = crypto.randomUUID();
      const t0 = performance.now();
      const r = await call(B, "POST", "/prompt", {
        prompt: smallGraph({ seed: 19 }),
        client_id: "late",
        prompt_id: pid,
      });
      const answeredAt = performance.now();
      expect(r.json).toMatchObject({ prompt_id: pid, node_errors: {} });
      // Finished (history written, done event sent) before the answer left the fake.
      expect(fake.finishTimes.get(pid)).toBeLessThanOrEqual(performance.timeOrigin + answeredAt);
      await c.done(pid, 1000);
      expect(answeredAt - t0).toBeGreaterThanOrEqual(300);
      expect(Object.keys((await call(B, "GET", `/history/${pid}`)).json)).toEqual([pid]);
      expect(fake.faultsFired.lateAnswers).toBe(1);
      // A validation error is still answered at once (nothing queued).
      expect((await call(B, "POST", "/prompt", { prompt: {} })).status).toBe(400);
      expect(fake.faultsFired.lateAnswers).toBe(1);
      c.close();
    } finally {
      fake.setTiming({ nodeDelayMsByClass: { VAEDecode: 1500 } });
    }
  });

  it("historyLagMs: /history hides a finished job for n ms after its done event", async () => {
    fake.resetCounters();
    fake.setTiming({ nodeDelayMsByClass: {} });
    try {
      const c = await openWs(B, "lag");
      fake.setFaults({ historyLagMs: 400 });
      const r = await submit(B, smallGraph({ seed: 20 }), "lag");
      const pid = r.json.prompt_id;
      const done = await c.done(pid);
      expect((await call(B, "GET", `/history/${pid}`)).json).toEqual({});
      expect(Object.keys((await call(B, "GET", "/history")).json)).not.toContain(pid);
      expect(Object.keys((await call(B, "GET", "/history?max_items=1")).json)).not.toContain(pid);
      expect(fake.faultsFired.laggedHistoryReads).toBe(3);
      await sleep(Math.max(0, 420 - (performance.now() - done.at)));
      expect(Object.keys((await call(B, "GET", `/history/${pid}`)).json)).toEqual([pid]);
      expect(Object.keys((await call(B, "GET", "/history?max_items=1")).json)).toEqual([pid]);
      expect(fake.faultsFired.laggedHistoryReads).toBe(3);
      c.close();
    } finally {
      fake.setTiming({ nodeDelayMsByClass: { VAEDecode: 1500 } });
    }
  });

  it("idleSocketCloseMs: an idle socket is closed with 1001; a client that pings every 100 ms stays", async () => {
    fake.resetCounters();
    const idle = await openWs(B, "idle");
    const chatty = await openWs(B, "chatty");
    const pinger = setInterval(() => chatty.ws.send(JSON.stringify({ type: "ping" })), 100);
    try {
      const t0 = performance.now();
      expect((await call(B, "POST", "/__fake/faults", { idleSocketCloseMs: 300 })).json.idleSocketCloseMs).toBe(300);
      const closed = await idle.closed;
      expect(closed.code).toBe(1001);
      expect(closed.at - t0).toBeGreaterThanOrEqual(280);
      expect(closed.at - t0).toBeLessThan(1500);
      await sleep(300);
      expect(chatty.ws.readyState).toBe(WebSocket.OPEN);
      expect((await call(B, "GET", "/__fake/state")).json.faults_fired.idleCloses).toBe(1);
      expect(fake.connections.get("idle")).toEqual({ opened: 1, closed: 1 });
    } finally {
      clearInterval(pinger);
      chatty.close();
    }
  });

  it("previewFrames: a binary PNG preview (§8.5, type 1 format 2; type 4 when negotiated) after each sampler progress", async () => {
    fake.resetCounters();
    fake.setTiming({ nodeDelayMsByClass: {} });
    try {
      const c = await openWs(B, "pv");
      fake.setFaults({ previewFrames: true });
      const r = await submit(B, smallGraph({ seed: 21, steps: 3 }), "pv");
      await c.done(r.json.prompt_id);
      const seq = c.frames
        .filter((f) => f.bin || ["progress", "executed"].includes(f.msg.type))
        .map((f) => (f.bin ? "bin" : f.msg.type));
      expect(seq).toEqual(["progress", "bin", "progress", "bin", "progress", "bin", "executed"]);
      for (const f of c.frames.filter((x) => x.bin)) {
        const d = /** @type {Buffer} */ (f.data);
        expect([d.readUInt32BE(0), d.readUInt32BE(4)]).toEqual([1, 2]);
        expect(d.subarray(8, 16).toString("hex")).toBe("89504e470d0a1a0a");
      }
      expect(fake.faultsFired.previewFrames).toBe(3);

      const m = await openWs(B, "pv-meta");
      m.ws.send(JSON.stringify({ type: "feature_flags", data: { supports_preview_metadata: true } }));
      await m.until((x) => x.type === "feature_flags");
      const r2 = await submit(B, smallGraph({ seed: 22, steps: 1 }), "pv-meta");
      await m.done(r2.json.prompt_id);
      const bin = /** @type {Buffer} */ (m.frames.find((f) => f.bin)?.data);
      expect(bin.readUInt32BE(0)).toBe(4);
      const meta = JSON.parse(bin.subarray(8, 8 + bin.readUInt32BE(4)).toString());
      expect(meta).toMatchObject({ prompt_id: r2.json.prompt_id, node_id: "3", image_type: "image/png" });
      expect(fake.faultsFired.previewFrames).toBe(4);
      c.close();
      m.close();
    } finally {
      fake.setTiming({ nodeDelayMsByClass: { VAEDecode: 1500 } });
    }
  });

  it("faults_fired counts refused upgrades, 500s, slow answers, Access pages, dropped posts, failed nodes", async () => {
    fake.resetCounters();
    fake.setTiming({ nodeDelayMsByClass: {} });
    try {
      const refused = (path) =>
        new Promise((res) => {
          const ws = new WebSocket(`${B.replace("http", "ws")}${path}`);
          ws.on("unexpected-response", (_q, resp) => res(resp.statusCode));
          ws.on("error", () => {});
          ws.on("open", () => res("open"));
        });
      fake.setFaults({ refuseWebSocket: true });
      expect(await refused("/ws?clientId=r")).toBe(403);
      fake.setFaults({ refuseWebSocket: false, http500: true });
      expect((await call(B, "GET", "/prompt")).status).toBe(500);
      expect(await refused("/ws?clientId=r")).toBe(500);
      fake.setFaults({ http500: false, slowMs: 20 });
      await call(B, "GET", "/prompt");
      fake.setFaults({ slowMs: 0, accessRedirect: true });
      expect((await fetch(`${B}/prompt`, { redirect: "manual" })).status).toBe(302);
      fake.setFaults({ accessRedirect: false, accessHtml200: true });
      expect((await call(B, "GET", "/prompt")).text).toMatch(/Cloudflare Access/);
      fake.setFaults({ accessHtml200: false, dropPromptPosts: true });
      await expect(submit(B, sdGraph(), "x")).rejects.toThrow();
      fake.setFaults({ dropPromptPosts: false, failNodeClass: "KSampler" });
      const c = await openWs(B, "fail");
      const r = await submit(B, smallGraph({ seed: 23 }), "fail");
      await c.done(r.json.prompt_id);
      expect(c.texts().some((f) => f.msg.type === "execution_error")).toBe(true);
      c.close();
      const fired = (await call(B, "GET", "/__fake/faults-fired")).json;
      expect(fired).toEqual({
        dropSockets: 0,
        refusedUpgrades: 1,
        http500: 2,
        slow: 1,
        accessRedirect: 1,
        accessHtml200: 1,
        droppedPromptPosts: 1,
        failedNodes: 1,
        idleCloses: 0,
        lateAnswers: 0,
        laggedHistoryReads: 0,
        previewFrames: 0,
        slowViewBodies: 0,
      });
      expect((await call(B, "POST", "/__fake/faults", { reset: true })).json.answerAfterFinish).toBe(false);
    } finally {
      fake.setTiming({ nodeDelayMsByClass: { VAEDecode: 1500 } });
    }
  });
});
