#!/usr/bin/env node
// Self-check for the fake ComfyUI (plain node script, not a vitest file):
//   node test/fake-comfyui/selfcheck.mjs
// Starts fakes on ephemeral ports and drives them over real HTTP + WebSocket (`ws`), comparing
// against the recorded 0.3.64 traffic copied in samples/recorded.json. Prints PASS/FAIL per
// check and exits non-zero on any failure.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { startFakeComfy } from "./server.mjs";
import { readPngSize, checkPngChunks, encodePng } from "./png.mjs";
import { sdGraph } from "./graphs.mjs";

const WebSocket = createRequire(import.meta.url)("ws");
const REC = JSON.parse(readFileSync(fileURLToPath(new URL("./samples/recorded.json", import.meta.url)), "utf8"));

/** The default checkpoint list, sorted like ComfyUI's get_filename_list. */
const CKPTS = ["ace_step_v1_3.5b.safetensors", "sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.ckpt"];

let failures = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`PASS  ${name}`);
  } catch (err) {
    failures++;
    console.log(
      `FAIL  ${name}\n      ${String(/** @type {any} */ (err)?.stack ?? err)
        .split("\n")
        .slice(0, 4)
        .join("\n      ")}`,
    );
  }
}
function assert(cond, msg, extra) {
  if (!cond) throw new Error(msg + (extra !== undefined ? `: ${JSON.stringify(extra).slice(0, 600)}` : ""));
}
const eq = (a, b, msg) =>
  assert(
    isDeepStrictEqual(a, b),
    `${msg}\n        got      ${JSON.stringify(a)?.slice(0, 500)}\n        expected ${JSON.stringify(b)?.slice(0, 500)}`,
  );

/** Small HTTP helper returning status, headers, raw bytes and parsed JSON when possible. */
async function http(base, method, path, body, headers = {}) {
  const init = { method, headers: { ...headers }, redirect: /** @type {const} */ ("manual") };
  if (body !== undefined) {
    init.body = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
    if (!(body instanceof Uint8Array) && !headers["Content-Type"]) init.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(base + path, init);
  const bytes = Buffer.from(await r.arrayBuffer());
  let json;
  try {
    json = JSON.parse(bytes.toString("utf8"));
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, bytes, text: bytes.toString("utf8"), json };
}

/** A WebSocket that records every text message and can wait for one. */
async function openWs(base, clientId, path = "/ws") {
  const url = base.replace("http", "ws") + path + (clientId ? `?clientId=${clientId}` : "");
  const ws = new WebSocket(url);
  /** @type {any[]} */
  const msgs = [];
  const waiters = [];
  ws.on("message", (data, bin) => {
    if (bin) return;
    msgs.push(JSON.parse(data.toString()));
    for (const w of [...waiters]) w();
  });
  await new Promise((res, rej) => {
    ws.once("open", res);
    ws.once("error", rej);
    ws.once("unexpected-response", (_q, r) => rej(new Error(`upgrade refused ${r.statusCode}`)));
  });
  const until = (pred, ms = 5000) =>
    new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`timeout waiting; got ${msgs.map((m) => m.type).join(",")}`)), ms);
      const w = () => {
        const i = msgs.findIndex(pred);
        if (i >= 0) {
          clearTimeout(t);
          waiters.splice(waiters.indexOf(w), 1);
          res(msgs[i]);
        }
      };
      waiters.push(w);
      w();
    });
  const done = (pid, ms) =>
    until((m) => m.type === "executing" && m.data.node === null && m.data.prompt_id === pid, ms);
  return { ws, msgs, until, done, close: () => ws.terminate() };
}

/** Upgrade and report the HTTP answer instead of opening (for refused upgrades). */
function upgradeStatus(base, path = "/ws?clientId=x") {
  return new Promise((res) => {
    const ws = new WebSocket(base.replace("http", "ws") + path);
    ws.on("unexpected-response", (_req, r) => {
      let body = "";
      r.on("data", (c) => (body += c));
      r.on("end", () => res({ status: r.statusCode, headers: r.headers, body }));
    });
    ws.on("open", () => {
      ws.terminate();
      res({ status: 101 });
    });
    ws.on("error", () => {});
  });
}

// ---- bundled workflows (workflows/*.json + *.meta.json) ------------------------------------------
const WF_DIR = new URL("../../workflows/", import.meta.url);
const WORKFLOWS = ["generate_image", "generate_song", "generate_video", "image_to_image"];
const PARAM_TYPES = {
  STR: "str",
  STRING: "str",
  TEXT: "str",
  INT: "int",
  FLOAT: "float",
  BOOL: "bool",
  IMAGE: "image",
  AUDIO: "audio",
  VIDEO: "video",
};
const readJson = (url) => JSON.parse(readFileSync(url, "utf8"));

/** The PARAM_* grammar: `PARAM_[TYPE_]NAME`, TYPE only before the first "_", name normalised. */
function parsePlaceholder(v) {
  if (typeof v !== "string" || !v.startsWith("PARAM_")) return null;
  const token = v.slice("PARAM_".length);
  const i = token.indexOf("_");
  const typed = i >= 0 && token.slice(0, i).toUpperCase() in PARAM_TYPES;
  const type = typed ? PARAM_TYPES[token.slice(0, i).toUpperCase()] : "str";
  const name =
    (typed ? token.slice(i + 1) : token)
      .trim()
      .toLowerCase()
      .replace(/[^a-z0-9]/g, "_")
      .replace(/^_+|_+$/g, "") || "param";
  return { name, type };
}

/** Placeholders of a workflow: name → {type, bindings: [[node, input]]}, in discovery order. */
function placeholders(graph) {
  /** @type {Map<string, {type: string, bindings: [string, string][]}>} */
  const out = new Map();
  for (const [id, node] of Object.entries(graph)) {
    for (const [input, v] of Object.entries(node.inputs ?? {})) {
      const p = parsePlaceholder(v);
      if (!p) continue;
      if (!out.has(p.name)) out.set(p.name, { type: p.type, bindings: [] });
      out.get(p.name)?.bindings.push([id, input]);
    }
  }
  return out;
}

/** Load a bundled workflow and fill every placeholder from `values`, else its sidecar default. */
function filledWorkflow(stem, values = {}) {
  const graph = readJson(new URL(`${stem}.json`, WF_DIR));
  const meta = readJson(new URL(`${stem}.meta.json`, WF_DIR));
  for (const [name, { type, bindings }] of placeholders(graph)) {
    const raw = name in values ? values[name] : meta.parameters?.[name]?.default;
    assert(raw !== undefined, `${stem}: no value and no sidecar default for '${name}'`);
    const v =
      type === "int"
        ? Math.trunc(Number(raw))
        : type === "float"
          ? Number(raw)
          : type === "bool"
            ? Boolean(raw)
            : String(raw);
    for (const [id, input] of bindings) graph[id].inputs[input] = v;
  }
  return graph;
}

/** Run a prompt to completion on the shared socket and return its history outputs. */
async function runToHistory(base, s, graph) {
  const pid = randomUUID();
  const r = await postPrompt(base, graph, clientId, { prompt_id: pid });
  eq([r.status, r.json?.node_errors], [200, {}], "POST /prompt validates");
  await s.done(pid, 20000);
  const e = (await http(base, "GET", `/history/${pid}`)).json[pid];
  eq([e.status.status_str, e.status.messages.at(-1)[0]], ["success", "execution_success"], "history status");
  return { pid, outputs: e.outputs };
}

const postPrompt = (base, prompt, clientId, extra = {}) =>
  http(base, "POST", "/prompt", { prompt, ...(clientId !== undefined && { client_id: clientId }), ...extra });
const types = (msgs) => msgs.map((m) => m.type);
const forPrompt = (msgs, pid) => msgs.filter((m) => m.data?.prompt_id === pid || m.type === "status");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------------------
const fake = await startFakeComfy({ stepDelayMs: 5 });
const B = fake.url;
const clientId = randomUUID().replaceAll("-", "");
let sock = await openWs(B, clientId);
let _firstPid = "",
  firstFile = "";

await check(
  "discovery routes: /system_stats (+/api alias), /features, /models, /object_info/{class}, unknown folder 404",
  async () => {
    const s = await http(B, "GET", "/api/system_stats");
    eq(s.status, 200, "status");
    eq(s.headers.get("content-length"), "842", "Content-Length equals the recorded 842 (Python json.dumps bytes)");
    eq(s.json.system.comfyui_version, "0.3.64", "version");
    eq(
      (await http(B, "GET", "/features")).text,
      '{"supports_preview_metadata": true, "max_upload_size": 104857600}',
      "features",
    );
    eq((await http(B, "GET", "/models")).json.length, 20, "20 model folders [GET_models.json]");
    eq((await http(B, "GET", "/models/checkpoints")).json, CKPTS, "checkpoints (sorted)");
    const none = await http(B, "GET", "/models/nosuchfolder");
    eq(
      [none.status, none.bytes.length, none.headers.get("content-type")],
      [404, 0, "application/octet-stream"],
      "unknown folder",
    );
    eq((await http(B, "GET", "/object_info/NoSuchNode")).json, {}, "unknown class → {}");
    const ck = (await http(B, "GET", "/object_info/CheckpointLoaderSimple")).json;
    eq(ck.CheckpointLoaderSimple.input.required.ckpt_name[0], CKPTS, "ckpt_name[0]");
    const all = (await http(B, "GET", "/object_info")).json;
    assert(Object.keys(all).length === 376, "376 node classes", Object.keys(all).length);
    eq(all.SaveVideo.input.required.format[0], "COMBO", "V3 combo form present");
    eq((await http(B, "GET", "/embeddings")).json, [], "embeddings");
  },
);

await check(
  "WebSocket: first message status+sid; no clientId → uuid hex sid; feature_flags reply; ping ignored",
  async () => {
    eq(
      sock.msgs[0],
      { type: "status", data: { status: { exec_info: { queue_remaining: 0 } }, sid: clientId } },
      "connect status [WS_ws.json]",
    );
    const anon = await openWs(B, "", "/api/ws");
    await anon.until((m) => m.type === "status");
    assert(/^[0-9a-f]{32}$/.test(anon.msgs[0].data.sid), "sid is uuid4 hex", anon.msgs[0]);
    anon.ws.send(JSON.stringify({ type: "feature_flags", data: { supports_preview_metadata: true } }));
    const ff = await anon.until((m) => m.type === "feature_flags");
    eq(
      ff.data,
      { supports_preview_metadata: true, max_upload_size: 104857600 },
      "feature flags [WS_ws__connect_feature_flags.json]",
    );
    anon.ws.send(JSON.stringify({ type: "ping" }));
    await sleep(30);
    eq(types(anon.msgs), ["status", "feature_flags"], "nothing else sent");
    anon.close();
  },
);

await check(
  "SD1.5 txt2img: §8.3 event order with 20 progress events; history {} before, full entry after",
  async () => {
    const pid = randomUUID();
    const r = await postPrompt(B, sdGraph(), clientId, { prompt_id: pid });
    eq(r.json, { prompt_id: pid, number: 0, node_errors: {} }, "POST /prompt answer");
    eq(r.headers.get("content-length"), String(r.bytes.length), "content-length");
    eq(
      (await http(B, "GET", `/history/${pid}`)).json,
      {},
      "history while running [GET_history_prompt_id__pending.json]",
    );
    const doneMsg = await sock.done(pid);
    const tDone = performance.timeOrigin + performance.now();
    const ev = forPrompt(sock.msgs.slice(1), pid);
    const t = types(ev);
    const expectNodes = ["4", "5", "7", "6", "3", "8", "9"]; // ComfyUI's ExecutionList order for this graph
    eq(t.slice(0, 4), ["status", "status", "execution_start", "execution_cached"], "start");
    eq(
      ev.filter((m) => m.type === "executing" && m.data.node).map((m) => m.data.node),
      expectNodes,
      "executing order",
    );
    const prog = ev.filter((m) => m.type === "progress");
    eq(
      prog.map((m) => m.data.value),
      Array.from({ length: 20 }, (_, i) => i + 1),
      "progress values 1..20",
    );
    assert(
      prog.every((m) => m.data.max === 20 && m.data.node === "3" && m.data.prompt_id === pid),
      "progress shape",
      prog[0],
    );
    const iExec3 = ev.findIndex((m) => m.type === "executing" && m.data.node === "3");
    const iExec8 = ev.findIndex((m) => m.type === "executing" && m.data.node === "8");
    assert(
      ev.indexOf(prog[0]) > iExec3 && ev.indexOf(prog[19]) < iExec8,
      "progress between executing 3 and executing 8",
    );
    eq(t.slice(-5), ["executed", "progress_state", "execution_success", "status", "executing"], "tail order");
    const executed = ev.find((m) => m.type === "executed");
    eq(
      executed.data,
      {
        node: "9",
        display_node: "9",
        output: { images: [{ filename: "JOBID_00001_.png", subfolder: "gw", type: "output" }] },
        prompt_id: pid,
      },
      "executed",
    );
    eq(ev.at(-2).data, { status: { exec_info: { queue_remaining: 0 } } }, "final status");
    eq(doneMsg.data, { node: null, prompt_id: pid }, "done signal");
    const h = (await http(B, "GET", `/history/${pid}`)).json;
    const e = h[pid];
    eq(Object.keys(h), [pid], "single key");
    eq(
      Object.keys(e),
      Object.keys(REC["GET_history_prompt_id.json"]["47fcb200-6134-46ad-a81f-b8ce4d8e7a2a"]),
      "entry keys as recorded",
    );
    eq(
      [e.prompt.length, e.prompt[0], e.prompt[1], e.prompt[3], e.prompt[4]],
      [5, 0, pid, { client_id: clientId }, ["9"]],
      "prompt 5-tuple",
    );
    eq(e.outputs, { 9: executed.data.output }, "outputs");
    eq(
      [e.status.status_str, e.status.completed, e.status.messages.map((m) => m[0])],
      ["success", true, ["execution_start", "execution_cached", "execution_success"]],
      "status",
    );
    eq(e.meta, { 9: { node_id: "9", display_node: "9", parent_node: null, real_node_id: "9" } }, "meta");
    const ft = fake.finishTimes.get(pid);
    assert(
      typeof ft === "number" && ft <= tDone && tDone - ft < 1000 && !Number.isInteger(ft),
      "finishTimes recorded (sub-ms) before the done message",
      { ft, tDone },
    );
    _firstPid = pid;
    firstFile = "JOBID_00001_.png";
  },
);

await check(
  "/view: PNG with valid CRCs, IHDR 512×512, recorded headers; Range → 206; traversal 400; missing 404",
  async () => {
    const v = await http(B, "GET", `/view?filename=${firstFile}&subfolder=gw&type=output`);
    eq(v.status, 200, "status");
    eq(readPngSize(v.bytes), { width: 512, height: 512 }, "IHDR size");
    assert(checkPngChunks(v.bytes).ok, "all chunk CRCs valid", checkPngChunks(v.bytes));
    eq(v.headers.get("content-type"), "image/png", "content-type");
    eq(v.headers.get("content-disposition"), `filename="${firstFile}"`, "content-disposition");
    assert(/^"[0-9a-f]+-[0-9a-f]+"$/.test(v.headers.get("etag") ?? ""), "etag format", v.headers.get("etag"));
    eq(v.headers.get("accept-ranges"), "bytes", "accept-ranges");
    assert(v.headers.get("last-modified")?.endsWith("GMT"), "last-modified");
    eq(v.headers.get("content-length"), String(v.bytes.length), "content-length");
    const recNames = Object.keys(REC["GET_view.json"].headers).filter(
      (k) => !["Date", "Server", "Connection"].includes(k),
    );
    for (const k of recNames) assert(v.headers.has(k), `header ${k} present`);
    const part = await http(B, "GET", `/view?filename=${firstFile}&subfolder=gw`, undefined, { Range: "bytes=0-23" });
    eq(
      [part.status, part.bytes.length, part.headers.get("content-range")],
      [206, 24, `bytes 0-23/${v.bytes.length}`],
      "range",
    );
    eq(part.bytes, v.bytes.subarray(0, 24), "range bytes");
    const tr = await http(B, "GET", "/view?filename=../../etc/passwd&type=output");
    eq([tr.status, tr.bytes.length], [400, 0], "traversal [GET_view__traversal.json]");
    const nf = await http(B, "GET", "/view?filename=does_not_exist.png&type=output");
    eq(
      [nf.status, nf.bytes.length, nf.headers.get("content-type")],
      [404, 0, "application/octet-stream"],
      "missing [GET_view__404.json]",
    );
    eq((await http(B, "GET", "/view?filename=x.png&subfolder=../..")).status, 403, "subfolder escape 403");
  },
);

await check("cached rerun of the SD graph: all nodes cached, old filename, no new file", async () => {
  const before = fake.files.list().length;
  const pid = randomUUID();
  const n = sock.msgs.length;
  await postPrompt(B, sdGraph(), clientId, { prompt_id: pid });
  await sock.done(pid);
  const ev = forPrompt(sock.msgs.slice(n), pid);
  eq(
    ev.find((m) => m.type === "execution_cached").data.nodes,
    ["3", "4", "5", "6", "7", "8", "9"],
    "execution_cached lists every node",
  );
  eq(types(ev), REC["WS_ws__cached_rerun.json"].message_types, "event types as WS_ws__cached_rerun.json");
  eq(ev.find((m) => m.type === "executed").data.output.images[0].filename, firstFile, "old filename");
  eq(fake.files.list().length, before, "no file written");
});

await check("requested size and batch: 640×384 batch 2 → _00002_/_00003_, new seed gives different bytes", async () => {
  const pid = randomUUID();
  await postPrompt(B, sdGraph({ seed: 7, width: 640, height: 384, batch: 2, steps: 3 }), clientId, { prompt_id: pid });
  await sock.done(pid);
  const out = (await http(B, "GET", `/history/${pid}`)).json[pid].outputs["9"].images.map((i) => i.filename);
  eq(out, ["JOBID_00002_.png", "JOBID_00003_.png"], "per-prefix counter continues");
  const a = await http(B, "GET", "/view?filename=JOBID_00002_.png&subfolder=gw");
  const b = await http(B, "GET", "/view?filename=JOBID_00003_.png&subfolder=gw");
  const first = await http(B, "GET", `/view?filename=${firstFile}&subfolder=gw`);
  eq(readPngSize(a.bytes), { width: 640, height: 384 }, "IHDR");
  assert(!a.bytes.equals(b.bytes) && !a.bytes.equals(first.bytes), "batch items and seeds differ");
});

await check("recorded 400 bodies replayed byte for byte (fake with no checkpoints, like the recording)", async () => {
  // No model files at all, as on the recording box (also exercises the older `checkpoints` option).
  const bare = await startFakeComfy({ checkpoints: [], models: { diffusion_models: [], text_encoders: [], vae: [] } });
  try {
    for (const ex of REC.prompt_errors) {
      const r = await http(bare.url, "POST", "/prompt", ex.request);
      eq([r.status, r.json], [ex.status, ex.response], ex.sample);
      eq(r.bytes.length, ex.content_length, `${ex.sample} Content-Length`);
    }
    const bad = await http(bare.url, "POST", "/prompt", "{not json");
    eq(
      [bad.status, bad.headers.get("content-type"), bad.text],
      [500, "text/plain; charset=utf-8", "500 Internal Server Error\n\nServer got itself in trouble"],
      "non-JSON [POST_prompt__error_invalid_json.json]",
    );
    // 9 rejected + 1 non-JSON: the counter moved 9 (non-JSON consumes none), as recorded (§3.1).
    const ok = await postPrompt(bare.url, REC["POST_prompt.json"].prompt, "abc");
    eq(ok.json.number, 9, "counter increments on every parsed POST");
  } finally {
    await bare.close();
  }
});

await check("missing checkpoint (configured list) and missing required input: 400 shapes", async () => {
  const r = await postPrompt(B, sdGraph({ ckpt: "sd15.safetensors" }), clientId);
  eq(r.status, 400, "status");
  eq(
    r.json,
    {
      error: {
        type: "prompt_outputs_failed_validation",
        message: "Prompt outputs failed validation",
        details: "",
        extra_info: {},
      },
      node_errors: {
        4: {
          errors: [
            {
              type: "value_not_in_list",
              message: "Value not in list",
              details:
                "ckpt_name: 'sd15.safetensors' not in ['ace_step_v1_3.5b.safetensors', 'sd_xl_base_1.0.safetensors', 'v1-5-pruned-emaonly.ckpt']",
              extra_info: {
                input_name: "ckpt_name",
                input_config: [CKPTS, { tooltip: "The name of the checkpoint (model) to load." }],
                received_value: "sd15.safetensors",
              },
            },
          ],
          dependent_outputs: ["9"],
          class_type: "CheckpointLoaderSimple",
        },
      },
    },
    "missing checkpoint [POST_prompt__error_missing_checkpoint.json shape]",
  );
  const g = sdGraph();
  delete g[3].inputs.steps;
  const m = await postPrompt(B, g, clientId);
  eq(
    m.json.node_errors,
    {
      3: {
        errors: [
          {
            type: "required_input_missing",
            message: "Required input is missing",
            details: "steps",
            extra_info: { input_name: "steps" },
          },
        ],
        dependent_outputs: ["9"],
        class_type: "KSampler",
      },
    },
    "missing input [POST_prompt__error_missing_input.json shape]",
  );
  const v3 = await postPrompt(
    B,
    {
      1: { class_type: "EmptyImage", inputs: { width: 8, height: 8, batch_size: 2, color: 0 } },
      2: { class_type: "CreateVideo", inputs: { images: ["1", 0], fps: 8 } },
      3: {
        class_type: "SaveVideo",
        inputs: { video: ["2", 0], filename_prefix: "video/x", format: "mkv", codec: "h264" },
      },
    },
    clientId,
  );
  eq(v3.json.node_errors[3].errors[0].details, "format: 'mkv' not in ['auto', 'mp4']", "V3 COMBO membership");
  const big = await postPrompt(B, sdGraph({ steps: 10001 }), clientId);
  eq(big.json.node_errors[3].errors[0].type, "value_bigger_than_max", "max check");
});

await check(
  "recorded basic workflow: WS_ws.json event types, then cached rerun like WS_ws__cached_rerun.json",
  async () => {
    const abc = await openWs(B, "abc");
    const r = await postPrompt(B, REC["POST_prompt.json"].prompt, "abc");
    await abc.done(r.json.prompt_id);
    eq(types(abc.msgs.slice(1)), REC["WS_ws.json"].message_types, "WS_ws.json message_types");
    eq(
      (await http(B, "GET", `/history/${r.json.prompt_id}`)).json[r.json.prompt_id].outputs,
      { 2: { images: [{ filename: "gw_test_00001_.png", subfolder: "", type: "output" }] } },
      "outputs",
    );
    const n = abc.msgs.length;
    const r2 = await postPrompt(B, REC["POST_prompt.json"].prompt, "abc");
    await abc.done(r2.json.prompt_id);
    eq(types(abc.msgs.slice(n)), REC["WS_ws__cached_rerun.json"].message_types, "cached rerun message_types");
    const ps = abc.msgs.slice(n).find((m) => m.type === "progress_state");
    eq(
      ps.data.nodes,
      {
        2: {
          value: 1,
          max: 1,
          state: "finished",
          node_id: "2",
          prompt_id: r2.json.prompt_id,
          display_node_id: "2",
          parent_node_id: null,
          real_node_id: "2",
        },
      },
      "cached progress_state",
    );
    abc.close();
  },
);

await check("execution_error (ImageToMask alpha): recorded event order and IndexError payload", async () => {
  const abc = await openWs(B, "abc");
  const r = await postPrompt(B, REC["POST_prompt__execution_error.json"].prompt, "abc");
  await abc.done(r.json.prompt_id);
  eq(
    types(abc.msgs.slice(1)),
    REC["WS_ws__execution_error.json"].message_types,
    "WS_ws__execution_error.json message_types",
  );
  const err = abc.msgs.find((m) => m.type === "execution_error").data;
  eq(
    [err.node_id, err.node_type, err.executed, err.exception_type, err.exception_message],
    ["2", "ImageToMask", ["1"], "IndexError", "index 3 is out of bounds for dimension 3 with size 3\n"],
    "payload",
  );
  assert(
    Array.isArray(err.traceback) && err.traceback.length === 5 && typeof err.timestamp === "number",
    "traceback + timestamp",
  );
  const st = (await http(B, "GET", `/history/${r.json.prompt_id}`)).json[r.json.prompt_id].status;
  eq([st.status_str, st.completed, st.messages.at(-1)[0]], ["error", false, "execution_error"], "history status");
  abc.close();
});

await check(
  "prompt without client_id: sockets only see status and progress_state [WS_ws__no_client_id.json]",
  async () => {
    const other = await openWs(B, "watcher");
    const g = structuredClone(REC["POST_prompt.json"].prompt);
    g[1].inputs.color = 255;
    const r = await postPrompt(B, g, undefined);
    for (let i = 0; i < 100 && !fake.finishTimes.has(r.json.prompt_id); i++) await sleep(10);
    await sleep(20);
    eq(types(other.msgs.slice(1)), REC["WS_ws__no_client_id.json"].message_types, "message types");
    other.close();
  },
);

await check("POST /queue {delete:[id]} → empty 200; pending job removed, never in history", async () => {
  const slow = randomUUID(),
    victim = randomUUID();
  await postPrompt(B, sdGraph({ seed: 1001, steps: 200 }), clientId, { prompt_id: slow });
  await postPrompt(B, sdGraph({ seed: 1002 }), clientId, { prompt_id: victim });
  const q = await http(B, "GET", "/queue");
  eq(
    [q.json.queue_running.map((i) => i[1]), q.json.queue_pending.map((i) => i[1])],
    [[slow], [victim]],
    "queue before",
  );
  const d = await http(B, "POST", "/queue", { delete: [victim] });
  eq(
    [d.status, d.bytes.length, d.headers.get("content-type"), d.headers.get("content-length")],
    [200, 0, "application/octet-stream", "0"],
    "empty 200 [POST_queue__delete.json]",
  );
  eq((await http(B, "GET", "/queue")).json.queue_pending, [], "pending emptied");
  eq((await http(B, "GET", "/prompt")).json, { exec_info: { queue_remaining: 1 } }, "GET /prompt");
  // interrupt the slow one next
  const i = await http(B, "POST", "/interrupt", { prompt_id: slow });
  eq([i.status, i.bytes.length], [200, 0], "interrupt empty 200");
  await sock.done(slow);
  eq(
    (await http(B, "GET", `/history/${victim}`)).json,
    {},
    "deleted prompt has no history [GET_history_prompt_id__deleted.json]",
  );
});

await check("interrupt of a running KSampler job → execution_interrupted, history error", async () => {
  const pid = randomUUID();
  await postPrompt(B, sdGraph({ seed: 2001, steps: 400 }), clientId, { prompt_id: pid });
  await sock.until((m) => m.type === "progress" && m.data.prompt_id === pid && m.data.value >= 3);
  eq((await http(B, "POST", "/interrupt", { prompt_id: "not-running" })).status, 200, "non-matching id is a no-op 200");
  await sleep(20);
  assert(
    !sock.msgs.some((m) => m.type === "execution_interrupted" && m.data.prompt_id === pid),
    "not interrupted by a foreign id",
  );
  await http(B, "POST", "/interrupt", "");
  await sock.done(pid);
  const ev = forPrompt(sock.msgs, pid);
  const intr = ev.find((m) => m.type === "execution_interrupted");
  assert(intr, "execution_interrupted sent", types(ev));
  eq(
    [intr.data.node_id, intr.data.node_type, intr.data.executed],
    ["3", "KSampler", []],
    "payload (loader/encoders came from cache)",
  );
  eq(types(ev).slice(-3), ["execution_interrupted", "status", "executing"], "tail [WS_ws__slow_interrupt_delete.json]");
  const st = (await http(B, "GET", `/history/${pid}`)).json[pid].status;
  eq(
    [st.status_str, st.completed, st.messages.at(-1)[0]],
    ["error", false, "execution_interrupted"],
    "history [GET_history_prompt_id__interrupted.json]",
  );
});

await check("fault failNodeClass=KSampler → CUDA OOM execution_error", async () => {
  fake.setFaults({ failNodeClass: "KSampler" });
  const pid = randomUUID();
  await postPrompt(B, sdGraph({ seed: 3001 }), clientId, { prompt_id: pid });
  await sock.done(pid);
  fake.setFaults({ failNodeClass: null });
  const err = forPrompt(sock.msgs, pid).find((m) => m.type === "execution_error").data;
  eq([err.node_id, err.exception_type], ["3", "torch.OutOfMemoryError"], "payload");
  assert(
    err.exception_message.startsWith("CUDA out of memory. Tried to allocate 2.00 GiB\n"),
    "OOM text",
    err.exception_message,
  );
});

await check(
  "fault accessRedirect (HTTP via /__fake/faults): 302 to cloudflareaccess.com with HTML, WS upgrade too",
  async () => {
    await http(B, "POST", "/__fake/faults", { accessRedirect: true });
    const r = await http(B, "GET", "/api/system_stats");
    eq(r.status, 302, "status");
    assert(
      r.headers.get("location")?.startsWith("https://team.cloudflareaccess.com/cdn-cgi/access/login/"),
      "Location",
      r.headers.get("location"),
    );
    assert(r.headers.get("content-type")?.startsWith("text/html") && r.text.includes("<html>"), "HTML body");
    const u = await upgradeStatus(B);
    eq(u.status, 302, "WS upgrade answered 302");
    await http(B, "POST", "/__fake/faults", { accessRedirect: false, accessHtml200: true });
    const h = await http(B, "GET", "/queue");
    assert(
      h.status === 200 && h.headers.get("content-type")?.startsWith("text/html") && h.json === undefined,
      "HTML 200 login page",
    );
    await http(B, "POST", "/__fake/faults", { reset: true, http500: true });
    const e = await http(B, "GET", "/queue");
    eq([e.status, e.text], [500, "500 Internal Server Error\n\nServer got itself in trouble"], "http500");
    await http(B, "POST", "/__fake/faults", { reset: true, dropPromptPosts: true });
    const cut = await http(B, "POST", "/prompt", { prompt: {} }).then(
      () => "answered",
      (error) => error,
    );
    assert(cut instanceof Error, "dropPromptPosts cuts POST /prompt", cut);
    eq((await http(B, "GET", "/prompt")).status, 200, "dropPromptPosts leaves GET /prompt alone");
    await http(B, "POST", "/__fake/faults", { reset: true, refuseWebSocket: true });
    eq((await upgradeStatus(B)).status, 403, "refuseWebSocket");
    fake.setFaults({ refuseWebSocket: false, slowMs: 60 });
    const t0 = performance.now();
    await http(B, "GET", "/prompt");
    assert(performance.now() - t0 >= 55, "slowMs delays answers");
    eq((await http(B, "POST", "/__fake/faults", { reset: true })).json.slowMs, 0, "reset");
  },
);

await check("fault dropSocketsAfterEvents=3: the socket closes right after 3 more per-prompt events", async () => {
  const c = await openWs(B, "dropper");
  const closed = new Promise((r) => c.ws.once("close", r));
  await http(B, "POST", "/__fake/faults", { dropSocketsAfterEvents: 3 });
  const r = await postPrompt(B, sdGraph({ seed: 4001, steps: 2 }), "dropper");
  await closed;
  eq(
    types(c.msgs.filter((m) => m.data?.prompt_id === r.json.prompt_id)),
    ["execution_start", "execution_cached", "progress_state"],
    "exactly 3 events",
  );
  eq(fake.faults.dropSocketsAfterEvents, null, "one-shot");
  for (let i = 0; i < 200 && !fake.finishTimes.has(r.json.prompt_id); i++) await sleep(10);
  assert(
    (await http(B, "GET", `/history/${r.json.prompt_id}`)).json[r.json.prompt_id],
    "job still finished (poll history)",
  );
});
sock = await openWs(B, clientId); // the drop fault closed every socket, ours included

await check(
  "media nodes: SaveVideo under images+animated in video/, SaveAudio flac under audio, SaveAnimatedWEBP",
  async () => {
    const pid = randomUUID();
    const g = {
      1: { class_type: "EmptyImage", inputs: { width: 128, height: 96, batch_size: 8, color: 3368601 } },
      2: { class_type: "CreateVideo", inputs: { images: ["1", 0], fps: 8.0 } },
      3: {
        class_type: "SaveVideo",
        inputs: { video: ["2", 0], filename_prefix: "video/gw_video", format: "mp4", codec: "h264" },
      },
      4: { class_type: "EmptyAudio", inputs: { duration: 1.0, sample_rate: 44100, channels: 2 } },
      5: { class_type: "SaveAudio", inputs: { audio: ["4", 0], filename_prefix: "audio/gw_audio" } },
      6: {
        class_type: "SaveAnimatedWEBP",
        inputs: {
          images: ["1", 0],
          filename_prefix: "gw_anim",
          fps: 6.0,
          lossless: false,
          quality: 80,
          method: "default",
        },
      },
    };
    await postPrompt(B, g, clientId, { prompt_id: pid });
    await sock.done(pid);
    const o = (await http(B, "GET", `/history/${pid}`)).json[pid].outputs;
    eq(
      o[3],
      { images: [{ filename: "gw_video_00001_.mp4", subfolder: "video", type: "output" }], animated: [true] },
      "video [GET_history_prompt_id__video_mp4.json]",
    );
    eq(
      o[5],
      { audio: [{ filename: "gw_audio_00001_.flac", subfolder: "audio", type: "output" }] },
      "audio [GET_history_prompt_id__audio_flac.json]",
    );
    eq(
      o[6],
      { images: [{ filename: "gw_anim_00001_.webp", subfolder: "", type: "output" }], animated: [true] },
      "webp",
    );
    const v = await http(B, "GET", "/view?filename=gw_video_00001_.mp4&subfolder=video&type=output");
    eq(
      [v.status, v.headers.get("content-type"), v.bytes.length],
      [200, "video/mp4", 2210],
      "mp4 bytes [GET_view__video_mp4.json]",
    );
    const a = await http(B, "GET", "/view?filename=gw_audio_00001_.flac&subfolder=audio");
    eq([a.headers.get("content-type"), a.bytes.length], ["audio/flac", 8644], "flac");
  },
);

await check(
  "upload: name kept, identical bytes reuse the name, different bytes → ' (1)'; LoadImage uses it",
  async () => {
    const up = async (bytes) => {
      const fd = new FormData();
      fd.append("image", new Blob([bytes], { type: "image/png" }), "gw_upload.png");
      fd.append("type", "input");
      const r = await fetch(`${B}/upload/image`, { method: "POST", body: fd });
      return r.json();
    };
    const png = encodePng(40, 30, { type: "solid", rgb: [1, 2, 3] });
    eq(await up(png), { name: "gw_upload.png", subfolder: "", type: "input" }, "first [POST_upload_image.json]");
    eq(await up(png), { name: "gw_upload.png", subfolder: "", type: "input" }, "identical");
    eq((await up(encodePng(40, 30, { type: "solid", rgb: [9, 9, 9] }))).name, "gw_upload (1).png", "renamed");
    eq(
      (await http(B, "GET", "/object_info/LoadImage")).json.LoadImage.input.required.image[0],
      ["gw_upload (1).png", "gw_upload.png"],
      "listed in object_info",
    );
    const pid = randomUUID();
    await postPrompt(
      B,
      {
        1: { class_type: "LoadImage", inputs: { image: "gw_upload.png" } },
        2: { class_type: "ImageInvert", inputs: { image: ["1", 0] } },
        3: { class_type: "SaveImage", inputs: { images: ["2", 0], filename_prefix: "gw_loaded" } },
      },
      clientId,
      { prompt_id: pid },
    );
    await sock.done(pid);
    const v = await http(B, "GET", "/view?filename=gw_loaded_00001_.png");
    eq(readPngSize(v.bytes), { width: 40, height: 30 }, "loaded size kept");
    const bad = await postPrompt(
      B,
      {
        1: { class_type: "LoadImage", inputs: { image: "nope.png" } },
        2: { class_type: "PreviewImage", inputs: { images: ["1", 0] } },
      },
      clientId,
    );
    eq(bad.json.node_errors[1].errors[0].details, "image - Invalid image file: nope.png", "custom_validation_failed");
  },
);

await check(
  "model folders: defaults in /models/{folder} and the loader combos; VAELoader keeps pixel_space",
  async () => {
    eq(
      (await http(B, "GET", "/models/diffusion_models")).json,
      ["wan2.1_t2v_1.3B_fp16.safetensors"],
      "diffusion_models",
    );
    eq(
      (await http(B, "GET", "/models/text_encoders")).json,
      ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"],
      "text_encoders",
    );
    eq((await http(B, "GET", "/models/vae")).json, ["wan_2.1_vae.safetensors"], "vae");
    eq((await http(B, "GET", "/models/loras")).json, [], "loras");
    const all = (await http(B, "GET", "/object_info")).json;
    eq(all.UNETLoader.input.required.unet_name[0], ["wan2.1_t2v_1.3B_fp16.safetensors"], "UNETLoader.unet_name");
    eq(all.CLIPLoader.input.required.clip_name[0], ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"], "CLIPLoader.clip_name");
    eq(
      all.VAELoader.input.required.vae_name[0],
      ["wan_2.1_vae.safetensors", "pixel_space"],
      "VAELoader.vae_name (files, then recorded extras)",
    );
    eq(all.LoraLoader.input.required.lora_name[0], [], "LoraLoader.lora_name");
    const custom = await startFakeComfy({
      checkpoints: ["old-option.ckpt"],
      models: {
        diffusion_models: ["z.safetensors", "sub/a.safetensors"],
        vae: ["taesd_decoder.pth"],
        loras: ["l.safetensors"],
      },
    });
    try {
      eq(
        (await http(custom.url, "GET", "/models/checkpoints")).json,
        ["old-option.ckpt"],
        "legacy checkpoints option still works",
      );
      eq(
        (await http(custom.url, "GET", "/models/diffusion_models")).json,
        ["sub/a.safetensors", "z.safetensors"],
        "configured + sorted",
      );
      eq(
        (await http(custom.url, "GET", "/models/text_encoders")).json,
        ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"],
        "unset folder keeps its default",
      );
      const oi = (await http(custom.url, "GET", "/object_info")).json;
      eq(
        [
          oi.UNETLoader.input.required.unet_name[0],
          oi.VAELoader.input.required.vae_name[0],
          oi.LoraLoader.input.required.lora_name[0],
          oi.LoraLoaderModelOnly.input.required.lora_name[0],
        ],
        [
          ["sub/a.safetensors", "z.safetensors"],
          ["taesd_decoder.pth", "pixel_space"],
          ["l.safetensors"],
          ["l.safetensors"],
        ],
        "combos follow options.models",
      );
      const both = await startFakeComfy({ checkpoints: ["legacy.ckpt"], models: { checkpoints: ["new.safetensors"] } });
      eq(
        (await http(both.url, "GET", "/object_info/CheckpointLoaderSimple")).json.CheckpointLoaderSimple.input.required
          .ckpt_name[0],
        ["new.safetensors"],
        "models.checkpoints wins",
      );
      await both.close();
    } finally {
      await custom.close();
    }
  },
);

await check(
  "bundled workflows: every PARAM_* placeholder has a sidecar entry; optional ones have in-range defaults",
  async () => {
    for (const stem of WORKFLOWS) {
      const ph = placeholders(readJson(new URL(`${stem}.json`, WF_DIR)));
      const meta = readJson(new URL(`${stem}.meta.json`, WF_DIR));
      assert(
        typeof meta.name === "string" &&
          typeof meta.description === "string" &&
          ["image", "audio", "video"].includes(meta.namespace),
        `${stem}: name/description/namespace`,
        meta,
      );
      eq(Object.keys(meta.parameters).sort(), [...ph.keys()].sort(), `${stem}: sidecar parameters = placeholders`);
      for (const [name, p] of Object.entries(meta.parameters)) {
        assert(typeof p.description === "string" && p.description.length >= 10, `${stem}.${name}: description`);
        if (p.required || name === "seed") {
          assert(!("default" in p), `${stem}.${name}: required/seed has no default`);
          continue;
        }
        assert("default" in p, `${stem}.${name}: optional parameter needs a default`);
        const d = p.default;
        if (typeof d === "number") {
          assert((p.min ?? -Infinity) <= d && d <= (p.max ?? Infinity), `${stem}.${name}: default within min/max`, p);
          if (p.step) assert(Number.isInteger(d / p.step), `${stem}.${name}: default a multiple of step`, p);
        }
        if (p.enum) assert(p.enum.includes(d), `${stem}.${name}: default in enum`, p);
      }
      for (const req of ["prompt", "tags", "lyrics", "image"])
        if (ph.has(req)) eq(meta.parameters[req].required, true, `${stem}.${req} required`);
    }
    eq(
      placeholders(readJson(new URL("image_to_image.json", WF_DIR))).get("image"),
      { type: "image", bindings: [["10", "image"]] },
      "PARAM_IMAGE_IMAGE → image (media type)",
    );
  },
);

await check("workflows/generate_image.json with sidecar defaults → one 512×512 PNG", async () => {
  const { outputs } = await runToHistory(
    B,
    sock,
    filledWorkflow("generate_image", { prompt: "a lighthouse at dusk", seed: 11 }),
  );
  const items = outputs[9].images;
  eq(
    [items.length, items[0].subfolder, items[0].type, /^ComfyUI_\d{5}_\.png$/.test(items[0].filename)],
    [1, "", "output", true],
    "one PNG item",
  );
  const v = await http(B, "GET", `/view?filename=${items[0].filename}&type=output`);
  eq([v.headers.get("content-type"), readPngSize(v.bytes)], ["image/png", { width: 512, height: 512 }], "PNG 512×512");
});

await check(
  "workflows/generate_song.json with sidecar defaults → MP3 under audio in audio/, 50 sampler steps",
  async () => {
    const n = sock.msgs.length;
    const { pid, outputs } = await runToHistory(
      B,
      sock,
      filledWorkflow("generate_song", { tags: "funk, slap bass, 120 bpm", lyrics: "[verse]\nhello gateway", seed: 12 }),
    );
    eq(
      outputs,
      { 8: { audio: [{ filename: "ComfyUI_00001_.mp3", subfolder: "audio", type: "output" }] } },
      "outputs [GET_history_prompt_id__audio_mp3.json shape]",
    );
    const prog = sock.msgs.slice(n).filter((m) => m.type === "progress" && m.data.prompt_id === pid);
    eq(
      [prog.length, prog.at(-1)?.data.max, prog.at(-1)?.data.node],
      [50, 50, "6"],
      "50 progress steps on the KSampler",
    );
    const v = await http(B, "GET", "/view?filename=ComfyUI_00001_.mp3&subfolder=audio&type=output");
    eq([v.status, v.headers.get("content-type")], [200, "audio/mpeg"], "mp3 served");
  },
);

await check("workflows/generate_video.json with sidecar defaults → MP4 under images + animated in video/", async () => {
  const { outputs } = await runToHistory(
    B,
    sock,
    filledWorkflow("generate_video", { prompt: "a paper boat drifting on a pond", seed: 13 }),
  );
  eq(
    outputs,
    { 50: { images: [{ filename: "ComfyUI_00001_.mp4", subfolder: "video", type: "output" }], animated: [true] } },
    "outputs [GET_history_prompt_id__video_mp4.json shape]",
  );
  const v = await http(B, "GET", "/view?filename=ComfyUI_00001_.mp4&subfolder=video&type=output");
  eq([v.status, v.headers.get("content-type")], [200, "video/mp4"], "mp4 served");
  // The decoded video has `length` frames of width×height: save them as PNGs instead to count them.
  const g = filledWorkflow("generate_video", {
    prompt: "frames",
    seed: 14,
    width: 64,
    height: 48,
    length: 9,
    steps: 2,
  });
  delete g[49];
  delete g[50];
  g[51] = { class_type: "SaveImage", inputs: { images: ["8", 0], filename_prefix: "gw_frames" } };
  const frames = (await runToHistory(B, sock, g)).outputs[51].images;
  eq(frames.length, 9, "VAEDecode of a 9-frame video latent gives 9 images");
  eq(
    readPngSize((await http(B, "GET", `/view?filename=${frames[8].filename}`)).bytes),
    { width: 64, height: 48 },
    "frame size",
  );
});

await check(
  "workflows/image_to_image.json with an uploaded 96×64 PNG → 96×64 PNG; denoise changes the result",
  async () => {
    const fd = new FormData();
    fd.append(
      "image",
      new Blob([encodePng(96, 64, { type: "pattern", hash: 42 })], { type: "image/png" }),
      "gw_i2i.png",
    );
    fd.append("type", "input");
    fd.append("overwrite", "true");
    const up = await (await fetch(`${B}/upload/image`, { method: "POST", body: fd })).json();
    eq(up, { name: "gw_i2i.png", subfolder: "", type: "input" }, "upload");
    const run = async (extra) => {
      const { outputs } = await runToHistory(
        B,
        sock,
        filledWorkflow("image_to_image", { image: up.name, prompt: "as a watercolour", seed: 15, ...extra }),
      );
      eq(outputs[9].images.length, 1, "one image");
      return (await http(B, "GET", `/view?filename=${outputs[9].images[0].filename}&type=output`)).bytes;
    };
    const a = await run({});
    eq(readPngSize(a), { width: 96, height: 64 }, "output has the input's size");
    assert(checkPngChunks(a).ok, "valid PNG");
    const b = await run({ denoise: 0.3 });
    assert(!a.equals(b), "a different denoise gives different bytes");
    const missing = await postPrompt(
      B,
      filledWorkflow("image_to_image", { image: "not_uploaded.png", prompt: "x", seed: 1 }),
      clientId,
    );
    eq(
      [missing.status, missing.json.node_errors[10]?.errors[0].type],
      [400, "custom_validation_failed"],
      "image not uploaded → LoadImage custom_validation_failed",
    );
  },
);

await check("unknown unet_name → 400 value_not_in_list (recorded shape), other loaders too", async () => {
  const r = await postPrompt(
    B,
    filledWorkflow("generate_video", { prompt: "x", seed: 1, model: "wan2.2_nope.safetensors" }),
    clientId,
  );
  eq(
    [r.status, r.json],
    [
      400,
      {
        error: {
          type: "prompt_outputs_failed_validation",
          message: "Prompt outputs failed validation",
          details: "",
          extra_info: {},
        },
        node_errors: {
          37: {
            errors: [
              {
                type: "value_not_in_list",
                message: "Value not in list",
                details: "unet_name: 'wan2.2_nope.safetensors' not in ['wan2.1_t2v_1.3B_fp16.safetensors']",
                extra_info: {
                  input_name: "unet_name",
                  input_config: [["wan2.1_t2v_1.3B_fp16.safetensors"], {}],
                  received_value: "wan2.2_nope.safetensors",
                },
              },
            ],
            dependent_outputs: ["50"],
            class_type: "UNETLoader",
          },
        },
      },
    ],
    "body",
  );
  const r2 = await postPrompt(
    B,
    filledWorkflow("generate_video", {
      prompt: "x",
      seed: 1,
      text_encoder: "t5xxl.safetensors",
      vae: "nope_vae.safetensors",
    }),
    clientId,
  );
  eq(
    Object.entries(r2.json.node_errors)
      .map(([id, e]) => [id, e.class_type, e.errors[0].type])
      .sort(),
    [
      ["38", "CLIPLoader", "value_not_in_list"],
      ["39", "VAELoader", "value_not_in_list"],
    ],
    "CLIPLoader and VAELoader checked too",
  );
  eq(
    r2.json.node_errors[39].errors[0].details,
    "vae_name: 'nope_vae.safetensors' not in ['wan_2.1_vae.safetensors', 'pixel_space']",
    "VAELoader list in the message",
  );
  const r3 = await postPrompt(
    B,
    filledWorkflow("generate_song", { tags: "x", lyrics: "y", seed: 1, model: "ace_step_v2.safetensors" }),
    clientId,
  );
  eq([r3.status, r3.json.node_errors[1]?.errors[0].type], [400, "value_not_in_list"], "song checkpoint checked");
});

await check("restart(): forgets history, queue and counter; same port; sockets closed", async () => {
  const closed = new Promise((r) => sock.ws.once("close", r));
  const port = fake.port;
  const r = await http(B, "POST", "/__fake/restart");
  eq(r.json, { ok: true }, "control route");
  await closed;
  eq((await http(B, "GET", "/history")).json, {}, "history empty");
  const again = await openWs(B, clientId);
  const p = await postPrompt(B, sdGraph({ seed: 5 }), clientId);
  eq([p.json.number, fake.port], [0, port], "counter reset, same port");
  const done = await again.done(p.json.prompt_id);
  eq(done.data.node, null, "runs after restart");
  const ft = await http(B, "GET", "/__fake/finish-times");
  assert(typeof ft.json[p.json.prompt_id] === "number", "GET /__fake/finish-times");
  again.close();
});

await fake.close();
console.log(failures === 0 ? "\nselfcheck: all checks passed" : `\nselfcheck: ${failures} check(s) FAILED`);
process.exit(failures === 0 ? 0 : 1);
