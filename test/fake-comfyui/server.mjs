// Fake ComfyUI 0.3.64: HTTP routes, WebSocket, queue/worker, history and fault injection.
// Spec: /work/shared/reference/comfyui-api.md §18; every shape comes from a recorded sample
// (cited as [SAMPLE.json], files of comfyui-samples/). Nothing here reads /work/shared: the
// recorded bodies it needs were copied into ./samples/ (see samples/SOURCES.md).
import http from "node:http";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import { pyDumps, PyFloat, pyStr } from "./pyjson.mjs";
import { validatePrompt } from "./validate.mjs";
import { executePrompt, Aborted } from "./executor.mjs";
import { FileStore, mimeFor, normpath, subfolderInside } from "./files.mjs";
import { encodePng } from "./png.mjs";

// A plain `import { WebSocketServer } from "ws"` breaks under vitest 4/5; require it instead.
const { WebSocketServer } = createRequire(import.meta.url)("ws");

const sample = (name) => JSON.parse(readFileSync(fileURLToPath(new URL(`./samples/${name}`, import.meta.url)), "utf8"));
const OBJECT_INFO = sample("object_info.json"); // [GET_object_info.json]
const SYSTEM_STATS = sample("system_stats.json"); // [GET_system_stats.json]
const FEATURES = sample("features.json"); // [GET_features.json]; also the WS feature_flags reply
const MODEL_FOLDERS = sample("models.json"); // [GET_models.json]
const KEY_ERROR_TB = sample("error_payloads.json").validationKeyErrorTraceback; // [POST_prompt__error_bad_link.json]

const SERVER_HEADER = "Python/3.11 aiohttp/3.8.4"; // as recorded
const ERROR_500 = "500 Internal Server Error\n\nServer got itself in trouble"; // [POST_prompt__error_invalid_json.json]
const SENSITIVE_KEYS = ["auth_token_comfy_org", "api_key_comfy_org"]; // stripped from queue/history
const IMAGE_EXT = /\.(png|jpe?g|webp|gif|bmp|tiff?)$/i;

/**
 * @typedef {object} Faults
 * @property {number|null} dropSocketsAfterEvents  one-shot: terminate every WebSocket after n more per-prompt events;
 *                                                  0 and null both mean off (setting either clears an armed drop)
 * @property {boolean} refuseWebSocket              answer the WS upgrade with 403
 * @property {number} slowMs                        delay every (non-/__fake) HTTP answer and WS upgrade
 * @property {boolean} http500                      every non-/__fake route answers 500 text/plain
 * @property {boolean} accessRedirect               misconfigured Cloudflare Access: 302 to the login page (WS too)
 * @property {boolean} accessHtml200                Cloudflare Access login page as an HTML 200
 * @property {string|null} failNodeClass            that class fails with a CUDA OOM execution_error
 * @property {boolean} dropPromptPosts              POST /prompt: the connection is cut before any answer
 *                                                  (a tunnel dying mid-submission); every other route works
 * @property {boolean} answerAfterFinish            POST /prompt queues and runs the job but answers only once it
 *                                                  has finished (history written, `executing {node: null}` sent)
 * @property {number} historyLagMs                   /history hides an entry for n ms after the job's done event
 * @property {number} idleSocketCloseMs              close (1001) a WebSocket with no frame either way for n ms
 * @property {boolean} previewFrames                 a binary PNG preview frame after each sampler `progress`
 * @property {number} slowViewBodyMs                 a whole-file /view body trickles out over n ms (a slow tunnel)
 */
export const DEFAULT_FAULTS = () =>
  /** @type {Faults} */ ({
    dropSocketsAfterEvents: null,
    refuseWebSocket: false,
    slowMs: 0,
    http500: false,
    accessRedirect: false,
    accessHtml200: false,
    failNodeClass: null,
    dropPromptPosts: false,
    answerAfterFinish: false,
    historyLagMs: 0,
    idleSocketCloseMs: 0,
    previewFrames: false,
    slowViewBodyMs: 0,
  });

/**
 * @typedef {object} FaultsFired  how many times each fault actually took effect
 * @property {number} dropSockets         sockets terminated by dropSocketsAfterEvents, /__fake/drop-sockets or dropSockets()
 * @property {number} refusedUpgrades     WS upgrades answered 403 by refuseWebSocket
 * @property {number} http500             answers (HTTP or WS upgrade) replaced by the 500
 * @property {number} slow                answers (HTTP or WS upgrade) delayed by slowMs
 * @property {number} accessRedirect      answers replaced by the Access 302
 * @property {number} accessHtml200       answers replaced by the Access login page
 * @property {number} droppedPromptPosts  POST /prompt connections cut
 * @property {number} failedNodes         nodes failed by failNodeClass
 * @property {number} idleCloses          sockets closed by idleSocketCloseMs
 * @property {number} lateAnswers         POST /prompt answers withheld by answerAfterFinish
 * @property {number} laggedHistoryReads  /history reads that hid at least one entry because of historyLagMs
 * @property {number} previewFrames       binary preview frames sent
 * @property {number} slowViewBodies      /view bodies trickled by slowViewBodyMs
 */
const ZERO_FIRED = () =>
  /** @type {FaultsFired} */ ({
    dropSockets: 0,
    refusedUpgrades: 0,
    http500: 0,
    slow: 0,
    accessRedirect: 0,
    accessHtml200: 0,
    droppedPromptPosts: 0,
    failedNodes: 0,
    idleCloses: 0,
    lateAnswers: 0,
    laggedHistoryReads: 0,
    previewFrames: 0,
    slowViewBodies: 0,
  });

/** @typedef {{nodeDelayMs: number, stepDelayMs: number, nodeDelayMsByClass: Record<string, number>}} Timing */

/** The 1×1 PNG sent in preview frames. */
const PREVIEW_PNG = encodePng(1, 1, { type: "solid", rgb: [128, 128, 128] });

/**
 * @typedef {object} PromptRecord
 * @property {string} prompt_id
 * @property {number} number
 * @property {string|null} client_id
 * @property {Record<string, any>} prompt
 * @property {"pending"|"running"|"success"|"error"|"interrupted"|"deleted"|"lost"} status
 * @property {number} submittedAt   ms epoch
 * @property {number} [startedAt]
 * @property {number} [finishedAt]
 */

/**
 * @typedef {object} FakeComfy
 * @property {number} port
 * @property {string} url                      http://host:port
 * @property {() => Promise<void>} close
 * @property {() => void} restart              forget queue, history, counter, cache, temp files, running job; drop sockets
 * @property {(partial: Partial<Faults>) => Faults} setFaults
 * @property {Faults} faults                   live object
 * @property {Map<string, number>} finishTimes  prompt_id → performance.timeOrigin + performance.now() when the job finished
 * @property {Map<string, PromptRecord>} prompts every accepted prompt
 * @property {() => number} dropSockets        terminate every WebSocket now; returns how many
 * @property {(partial: Partial<Timing>) => Timing} setTiming  change node/step durations for jobs that start later
 * @property {Map<string, {opened: number, closed: number}>} connections  WebSocket connections per clientId (or
 *                                             generated sid); each change stores a new object, so a copied Map is a snapshot
 * @property {FaultsFired} faultsFired         live counters
 * @property {() => void} resetCounters        zero `connections` and `faultsFired`
 * @property {FileStore} files
 * @property {Readonly<Record<string, string[]>>} models  model files per folder, sorted (what /models/{folder} serves)
 */

/** Model files "installed" per folder unless `options.models` / `options.checkpoints` say otherwise. */
export const DEFAULT_MODELS = Object.freeze({
  checkpoints: ["v1-5-pruned-emaonly.ckpt", "sd_xl_base_1.0.safetensors", "ace_step_v1_3.5b.safetensors"],
  diffusion_models: ["wan2.1_t2v_1.3B_fp16.safetensors"],
  text_encoders: ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"],
  vae: ["wan_2.1_vae.safetensors"],
  loras: [],
});

/**
 * Loader combos fed from a model folder (`folder_paths.get_filename_list(folder)`), as
 * [class_type, input name, folder]. VAELoader also keeps the recorded non-file entries.
 */
const MODEL_COMBOS = [
  ["CheckpointLoaderSimple", "ckpt_name", "checkpoints"],
  ["CheckpointLoader", "ckpt_name", "checkpoints"],
  ["unCLIPCheckpointLoader", "ckpt_name", "checkpoints"],
  ["ImageOnlyCheckpointLoader", "ckpt_name", "checkpoints"],
  ["CreateHookModelAsLora", "ckpt_name", "checkpoints"],
  ["CreateHookModelAsLoraModelOnly", "ckpt_name", "checkpoints"],
  ["UNETLoader", "unet_name", "diffusion_models"],
  ["CLIPLoader", "clip_name", "text_encoders"],
  ["DualCLIPLoader", "clip_name1", "text_encoders"],
  ["DualCLIPLoader", "clip_name2", "text_encoders"],
  ["TripleCLIPLoader", "clip_name1", "text_encoders"],
  ["TripleCLIPLoader", "clip_name2", "text_encoders"],
  ["TripleCLIPLoader", "clip_name3", "text_encoders"],
  ["VAELoader", "vae_name", "vae"],
  ["LoraLoader", "lora_name", "loras"],
  ["LoraLoaderModelOnly", "lora_name", "loras"],
  ["CreateHookLora", "lora_name", "loras"],
  ["CreateHookLoraModelOnly", "lora_name", "loras"],
];

/**
 * Start a fake ComfyUI.
 * @param {{port?: number, host?: string, checkpoints?: string[], models?: Partial<Record<string, string[]>>,
 *          stepDelayMs?: number, nodeDelayMs?: number, nodeDelayMsByClass?: Record<string, number>}} [options]
 *   `nodeDelayMsByClass`: an executed node of that class_type takes that many ms instead of `nodeDelayMs`, silently
 *   (no WS frame); samplers add their per-step progress (stepDelayMs each) after it.
 *   `models`: files per model folder (`checkpoints`, `diffusion_models`, `text_encoders`, `vae`, `loras`, or any
 *   other folder of GET /models); a folder not given keeps its DEFAULT_MODELS entry (others are empty).
 *   `checkpoints` is the older spelling of `models.checkpoints` (`models.checkpoints` wins when both are set).
 * @returns {Promise<FakeComfy>}
 */
export async function startFakeComfy(options = {}) {
  const { port = 0, host = "127.0.0.1", stepDelayMs = 5, nodeDelayMs = 1 } = options;
  /** @type {Record<string, string[]>} folder → sorted file list (ComfyUI sorts get_filename_list) */
  const models = {};
  for (const folder of MODEL_FOLDERS) {
    const given = options.models?.[folder] ?? (folder === "checkpoints" ? options.checkpoints : undefined);
    models[folder] = [...(given ?? DEFAULT_MODELS[folder] ?? [])].sort();
  }

  const faults = DEFAULT_FAULTS();
  /** @type {FaultsFired} */
  const faultsFired = ZERO_FIRED();
  /** @param {keyof FaultsFired} k */
  const fired = (k, n = 1) => {
    faultsFired[k] += n;
  };
  /** @type {Map<string, {opened: number, closed: number}>} */
  const connections = new Map();
  /** Per open socket: its sid, when a frame last went either way, negotiated preview metadata. */
  /** @type {Map<import("ws").WebSocket, {sid: string, lastFrame: number, previewMetadata: boolean}>} */
  const socketInfo = new Map();
  let idleSince = 0; // when idleSocketCloseMs was last set: no socket is idle for longer than that
  let idleTimer = /** @type {NodeJS.Timeout|null} */ (null);
  /** POST /prompt answers withheld by answerAfterFinish: prompt_id → callbacks (true: answer, false: cut). */
  /** @type {Map<string, ((answer: boolean) => void)[]>} */
  const lateAnswers = new Map();
  let dropCountdown = /** @type {number|null} */ (null);
  let dropping = false;
  const files = new FileStore();
  /** @type {Map<string, PromptRecord>} */
  const prompts = new Map();
  /** @type {Map<string, number>} */
  const finishTimes = new Map();
  /** @type {Map<string, import("ws").WebSocket>} */
  const sockets = new Map();
  const allSockets = new Set();

  // Mutable server state; restart() resets it.
  let counter = 0;
  /** @type {import("./executor.mjs").QueueItem[]} */
  let queue = []; // a binary heap exactly like Python's heapq (GET /queue shows the raw array)
  /** @type {import("./executor.mjs").QueueItem | null} */
  let running = null;
  /** @type {Map<string, object>} */
  let history = new Map();
  let runningClientId = /** @type {string|null} */ (null);
  let wake = /** @type {null | (() => void)} */ (null);
  let closed = false;

  /** @type {import("./executor.mjs").Hub} */
  const hub = {
    send,
    files,
    cache: new Map(),
    objectInfo: patchedObjectInfo(),
    options: { stepDelayMs, nodeDelayMs, nodeDelayMsByClass: {} },
    faults,
    fired,
    preview,
    interruptFlag: false,
    generation: 0,
    lastNodeId: null,
  };
  let objectInfoBody = /** @type {string|null} */ (null);
  if (options.nodeDelayMsByClass) setTiming({ nodeDelayMsByClass: options.nodeDelayMsByClass });

  /** /object_info with the configured model files and the uploaded input images as combos. */
  function patchedObjectInfo() {
    const info = structuredClone(OBJECT_INFO);
    for (const [cls, name, folder] of MODEL_COMBOS) {
      const spec = info[cls]?.input?.required?.[name] ?? info[cls]?.input?.optional?.[name];
      if (!spec || !Array.isArray(spec[0])) continue;
      // VAELoader.vae_list: the vae files, then taesd*/pixel_space entries (kept as recorded).
      const extras = cls === "VAELoader" ? spec[0].filter((n) => !models[folder].includes(n)) : [];
      spec[0] = [...models[folder], ...extras];
    }
    if (info.LoadImage)
      info.LoadImage.input.required.image[0] = files
        .names("input", "")
        .filter((n) => IMAGE_EXT.test(n))
        .sort();
    return info;
  }
  function inputsChanged() {
    hub.objectInfo = patchedObjectInfo();
    objectInfoBody = null;
  }

  // ---- queue (heapq on (number, prompt_id)) --------------------------------------------------
  const less = (a, b) => (a.number !== b.number ? a.number < b.number : a.prompt_id < b.prompt_id);
  function siftDown(h, start, pos) {
    const item = h[pos];
    while (pos > start) {
      const parent = (pos - 1) >> 1;
      if (!less(item, h[parent])) break;
      h[pos] = h[parent];
      pos = parent;
    }
    h[pos] = item;
  }
  function siftUp(h, pos) {
    const end = h.length,
      start = pos,
      item = h[pos];
    let child = 2 * pos + 1;
    while (child < end) {
      const right = child + 1;
      if (right < end && !less(h[child], h[right])) child = right;
      h[pos] = h[child];
      pos = child;
      child = 2 * pos + 1;
    }
    h[pos] = item;
    siftDown(h, start, pos);
  }
  const heappush = (h, x) => {
    h.push(x);
    siftDown(h, 0, h.length - 1);
  };
  const heappop = (h) => {
    const last = h.pop();
    if (h.length === 0) return last;
    const top = h[0];
    h[0] = last;
    siftUp(h, 0);
    return top;
  };
  const heapify = (h) => {
    for (let i = (h.length >> 1) - 1; i >= 0; i--) siftUp(h, i);
  };

  const queueRemaining = () => queue.length + (running ? 1 : 0);
  const statusData = () => ({ status: { exec_info: { queue_remaining: queueRemaining() } } });
  /** `status` broadcast on every queue change: enqueue, dequeue, finish, clear, delete (§8.2). */
  const queueUpdated = () => send("status", statusData(), null);
  const tuple = (it) => [it.numberOut, it.prompt_id, it.prompt, it.extra_data, it.outputs];

  function put(item) {
    heappush(queue, item);
    queueUpdated();
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  }

  // ---- WebSocket messaging ------------------------------------------------------------------
  /**
   * send_sync: sid null broadcasts, otherwise only the socket registered under that id (if any).
   * @param {string} event @param {object} data @param {string|null} sid
   */
  function send(event, data, sid) {
    if (dropping) return;
    const text = pyDumps({ type: event, data });
    const targets = sid === null ? [...sockets.values()] : sockets.has(sid) ? [sockets.get(sid)] : [];
    const open = targets.filter((ws) => ws && ws.readyState === 1);
    const perPrompt = "prompt_id" in data;
    const last = perPrompt && open.length > 0 && dropCountdown !== null && --dropCountdown <= 0;
    if (last) {
      dropping = true;
      dropCountdown = null;
      faults.dropSocketsAfterEvents = null;
    }
    let pending = open.length;
    for (const ws of open) {
      wsSend(ws, text, () => {
        // Drop only once the n-th event is on the wire, so the client really sees exactly n.
        if (last && --pending === 0) {
          dropSockets();
          dropping = false;
        }
      });
    }
  }

  /** ws.send that also restarts the socket's idle clock. */
  function wsSend(ws, data, cb) {
    const info = socketInfo.get(ws);
    if (info) info.lastFrame = performance.now();
    ws.send(data, cb);
  }

  /**
   * A binary preview frame (§8.5) after a sampler `progress`, to the prompt's client (broadcast
   * without one): type 1 PREVIEW_IMAGE + format 2 (PNG) + bytes, or type 4 PREVIEW_IMAGE_WITH_METADATA
   * to a socket whose first message negotiated `supports_preview_metadata: true`.
   */
  function preview(promptId, nodeId, sid) {
    if (dropping) return;
    const targets = sid === null ? [...sockets.values()] : sockets.has(sid) ? [sockets.get(sid)] : [];
    for (const ws of targets) {
      if (ws?.readyState !== 1) continue;
      let head;
      if (socketInfo.get(ws)?.previewMetadata) {
        const meta = Buffer.from(
          pyDumps({
            node_id: nodeId,
            prompt_id: promptId,
            display_node_id: nodeId,
            parent_node_id: null,
            real_node_id: nodeId,
            image_type: "image/png",
          }),
        );
        head = Buffer.alloc(8);
        head.writeUInt32BE(4, 0);
        head.writeUInt32BE(meta.length, 4);
        head = Buffer.concat([head, meta]);
      } else {
        head = Buffer.alloc(8);
        head.writeUInt32BE(1, 0); // PREVIEW_IMAGE
        head.writeUInt32BE(2, 4); // PNG
      }
      wsSend(ws, Buffer.concat([head, PREVIEW_PNG]));
      fired("previewFrames");
    }
  }

  /** The dropSockets fault (dropSocketsAfterEvents, /__fake/drop-sockets, fake.dropSockets()). */
  function dropSockets() {
    const n = terminateAll();
    fired("dropSockets", n);
    return n;
  }
  function terminateAll() {
    let n = 0;
    for (const ws of allSockets) {
      ws.terminate();
      n++;
    }
    allSockets.clear();
    sockets.clear();
    return n;
  }

  // ---- idle sockets (idleSocketCloseMs) -----------------------------------------------------
  function armIdleTimer() {
    if (idleTimer) clearInterval(idleTimer);
    idleTimer = null;
    const limit = faults.idleSocketCloseMs;
    if (!(limit > 0)) return;
    idleSince = performance.now();
    idleTimer = setInterval(closeIdleSockets, Math.max(10, Math.min(250, limit / 10)));
    idleTimer.unref();
  }
  function closeIdleSockets() {
    const limit = faults.idleSocketCloseMs;
    if (!(limit > 0)) return;
    const now = performance.now();
    for (const [ws, info] of socketInfo) {
      if (ws.readyState !== 1 || now - Math.max(info.lastFrame, idleSince) < limit) continue;
      fired("idleCloses");
      ws.close(1001, "idle"); // Cloudflare closes idle WebSockets (~100 s)
      setTimeout(() => ws.terminate(), 1000).unref(); // no close handshake from the peer: cut
    }
  }

  // ---- answerAfterFinish --------------------------------------------------------------------
  /** Release the withheld POST /prompt answers of this prompt (true) or cut their connections (false). */
  function settleLate(promptId, answer) {
    const waiting = lateAnswers.get(promptId);
    if (!waiting) return;
    lateAnswers.delete(promptId);
    for (const w of waiting) w(answer);
  }
  function cutAllLate() {
    for (const id of [...lateAnswers.keys()]) settleLate(id, false);
  }

  // ---- historyLagMs -------------------------------------------------------------------------
  /** Whether history must still pretend this finished prompt does not exist. */
  function lagging(id) {
    const lag = faults.historyLagMs;
    const at = finishTimes.get(id);
    return lag > 0 && at !== undefined && performance.timeOrigin + performance.now() - at < lag;
  }

  // ---- worker -------------------------------------------------------------------------------
  async function nextItem(gen) {
    while (queue.length === 0) {
      await new Promise((r) => (wake = r));
      if (closed || hub.generation !== gen) return null;
    }
    const item = heappop(queue);
    running = item;
    queueUpdated(); // the recorded second `status` with the same queue_remaining [WS_ws.json]
    return item;
  }

  async function workerLoop(gen) {
    while (!closed && hub.generation === gen) {
      const item = await nextItem(gen);
      if (!item) return;
      const rec = prompts.get(item.prompt_id);
      if (rec) {
        rec.status = "running";
        rec.startedAt = Date.now();
      }
      runningClientId = item.extra_data.client_id ?? null;
      let result;
      try {
        result = await executePrompt(hub, item);
      } catch (ex) {
        if (ex instanceof Aborted) return; // restart() threw this job away
        console.error("[fake-comfyui] executor bug:", ex);
        result = { success: false, messages: [], outputs: new Map(), meta: new Map() };
      }
      if (hub.generation !== gen) return;
      // task_done: write history, broadcast status, then the canonical "done" signal (§8.3).
      running = null;
      const last = result.messages.at(-1)?.[0];
      history.set(item.prompt_id, {
        prompt: tuple(item),
        outputs: result.outputs,
        status: {
          status_str: result.success ? "success" : "error",
          completed: result.success,
          messages: result.messages,
        },
        meta: result.meta,
      });
      queueUpdated();
      finishTimes.set(item.prompt_id, performance.timeOrigin + performance.now());
      if (rec) {
        rec.status = result.success ? "success" : last === "execution_interrupted" ? "interrupted" : "error";
        rec.finishedAt = Date.now();
      }
      if (runningClientId !== null) send("executing", { node: null, prompt_id: item.prompt_id }, runningClientId);
      runningClientId = null;
      settleLate(item.prompt_id, true);
    }
  }

  // ---- HTTP ---------------------------------------------------------------------------------
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) {
        if (err instanceof BadJson && err.status !== 500) sendText(res, err.status, `${err.status}: ${err.message}`);
        else sendText(res, 500, ERROR_500);
      } else res.destroy();
      if (!(err instanceof BadJson)) console.error("[fake-comfyui]", err);
    });
  });
  // aiohttp keeps idle connections for 75 s (AppRunner's keepalive_timeout); Node would close them
  // after 5 s, so every request after a long silent node would pay a new connection here only.
  server.keepAliveTimeout = 75_000;

  async function handle(req, res) {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname.startsWith("/__fake/")) return control(req, res, url);
    if (faults.slowMs > 0) {
      fired("slow");
      await sleep(faults.slowMs);
    }
    if (accessFault(res, req)) return;
    if (faults.http500) {
      fired("http500");
      return sendText(res, 500, ERROR_500);
    }
    // Every route is served at its bare path and under /api [GET_api_system_stats.json].
    const path = url.pathname.startsWith("/api/") ? url.pathname.slice(4) : url.pathname;
    const method = req.method === "HEAD" ? "GET" : req.method;
    const q = url.searchParams;
    let m;

    if (path === "/prompt" && method === "POST" && faults.dropPromptPosts) {
      fired("droppedPromptPosts");
      return void req.socket.destroy();
    }
    if (path === "/prompt" && method === "POST") return postPrompt(res, await readBody(req));
    if (path === "/prompt" && method === "GET")
      return sendJson(res, 200, { exec_info: { queue_remaining: queueRemaining() } }); // [GET_prompt.json]
    if (path === "/queue" && method === "GET") {
      return sendJson(res, 200, { queue_running: running ? [tuple(running)] : [], queue_pending: queue.map(tuple) }); // [GET_queue__running.json]
    }
    if (path === "/queue" && method === "POST") {
      const body = parseJson(await readBody(req));
      if (body && typeof body === "object" && !Array.isArray(body)) {
        if ("clear" in body && body.clear) {
          for (const it of queue) markDeleted(it.prompt_id);
          queue = [];
          queueUpdated();
        }
        for (const id of "delete" in body ? iter(body.delete) : []) {
          const i = queue.findIndex((it) => it.prompt_id === id); // pending only [POST_queue__delete.json]
          if (i >= 0) {
            queue.splice(i, 1);
            heapify(queue);
            markDeleted(id);
            queueUpdated();
          }
        }
      } else if (!Array.isArray(body) && typeof body !== "string") throw new BadJson();
      return sendEmpty(res);
    }
    if (path === "/interrupt" && method === "POST") {
      const raw = await readBody(req);
      let body = {};
      try {
        body = raw.length ? JSON.parse(raw.toString("utf8")) : {};
      } catch {
        body = {};
      }
      if (body === null || typeof body !== "object" || Array.isArray(body)) throw new BadJson(); // `[].get` → 500
      // Targeted interrupt only hits the running prompt [POST_interrupt__not_running.json]; else global.
      if (body.prompt_id) {
        if (running && running.prompt_id === body.prompt_id) hub.interruptFlag = true;
      } else hub.interruptFlag = true;
      return sendEmpty(res); // [POST_interrupt.json]
    }
    if (path === "/free" && method === "POST") {
      parseJson(await readBody(req));
      return sendEmpty(res);
    } // [POST_free.json]
    if (path === "/history" && method === "GET") return sendJson(res, 200, historySlice(q));
    if ((m = /^\/history\/(.+)$/.exec(path)) && method === "GET") {
      const id = decodeURIComponent(m[1]);
      if (history.has(id) && lagging(id)) {
        fired("laggedHistoryReads");
        return sendJson(res, 200, {});
      }
      return sendJson(res, 200, history.has(id) ? { [id]: history.get(id) } : {}); // {} until finished [GET_history_prompt_id__pending.json]
    }
    if (path === "/history" && method === "POST") {
      const body = parseJson(await readBody(req));
      if (body && typeof body === "object") {
        if ("clear" in body && body.clear) history.clear();
        for (const id of "delete" in body ? iter(body.delete) : []) history.delete(id);
      }
      return sendEmpty(res); // [POST_history__delete.json]
    }
    if (path === "/view" && method === "GET") return view(req, res, q);
    if (path === "/object_info" && method === "GET") {
      objectInfoBody ??= pyDumps(hub.objectInfo);
      return sendRaw(res, 200, "application/json; charset=utf-8", objectInfoBody);
    }
    if ((m = /^\/object_info\/(.+)$/.exec(path)) && method === "GET") {
      const cls = decodeURIComponent(m[1]);
      return sendJson(res, 200, cls in hub.objectInfo ? { [cls]: hub.objectInfo[cls] } : {}); // [GET_object_info_NoSuchNode.json]
    }
    if (path === "/models" && method === "GET") return sendJson(res, 200, MODEL_FOLDERS);
    if ((m = /^\/models\/([^/]+)$/.exec(path)) && method === "GET") {
      const folder = decodeURIComponent(m[1]);
      if (MODEL_FOLDERS.includes(folder)) return sendJson(res, 200, models[folder]);
      return sendEmpty(res, 404); // [GET_models_nosuchfolder.json]
    }
    if (path === "/embeddings" && method === "GET") return sendJson(res, 200, []); // [GET_embeddings.json]
    if (path === "/system_stats" && method === "GET") return sendJson(res, 200, SYSTEM_STATS);
    if (path === "/features" && method === "GET") return sendJson(res, 200, FEATURES);
    if (path === "/upload/image" && method === "POST") return upload(req, res, await readBody(req));
    if (path === "/ws" && method === "GET") return sendText(res, 400, "400: Bad Request"); // plain GET without Upgrade
    const known = [
      "/prompt",
      "/queue",
      "/interrupt",
      "/free",
      "/history",
      "/view",
      "/object_info",
      "/models",
      "/embeddings",
      "/system_stats",
      "/features",
      "/upload/image",
    ];
    if (known.includes(path)) return sendText(res, 405, "405: Method Not Allowed");
    return sendText(res, 404, "404: Not Found");
  }

  /** POST /prompt, a port of server.py's post_prompt (0.3.64). */
  function postPrompt(res, raw) {
    const body = parseJson(raw);
    if (body === null || typeof body === "number" || typeof body === "boolean") throw new BadJson(); // `"x" in 5` → TypeError → 500
    const isObj = typeof body === "object" && !Array.isArray(body);
    let number, numberOut;
    if (isObj && "number" in body) {
      // float(json_data['number']); explicit numbers do not advance the counter (server.py).
      const n = body.number;
      if (typeof n === "number") number = n;
      else if (typeof n === "boolean") number = Number(n);
      else if (typeof n === "string" && /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(n)) number = Number(n);
      else throw new BadJson();
      numberOut = new PyFloat(number);
    } else {
      number = numberOut = isObj && body.front ? -counter : counter;
      counter += 1;
    }
    if (!isObj || !("prompt" in body)) {
      return sendJson(res, 400, {
        error: { type: "no_prompt", message: "No prompt provided", details: "No prompt provided", extra_info: {} },
        node_errors: {},
      });
    }
    const prompt = body.prompt;
    if (prompt === null || typeof prompt !== "object" || Array.isArray(prompt)) throw new BadJson();
    const promptId = "prompt_id" in body ? pyStr(body.prompt_id) : randomUUID();
    const v = validatePrompt(prompt, hub.objectInfo, {
      partialTargets: body.partial_execution_targets ?? null,
      inputFileExists: (name) => inputExists(name),
      keyErrorTraceback: KEY_ERROR_TB,
    });
    let extra = "extra_data" in body ? body.extra_data : {};
    if ("client_id" in body) {
      if (extra === null || typeof extra !== "object") throw new BadJson();
      extra.client_id = body.client_id;
    }
    if (!v.ok) return sendJson(res, 400, { error: v.error, node_errors: v.nodeErrors });
    extra = { ...extra };
    for (const k of SENSITIVE_KEYS) delete extra[k];
    const item = { number, numberOut, prompt_id: promptId, prompt, extra_data: extra, outputs: v.outputs };
    prompts.set(promptId, {
      prompt_id: promptId,
      number,
      client_id: extra.client_id ?? null,
      prompt,
      status: "pending",
      submittedAt: Date.now(),
    });
    put(item);
    const answer = () => sendJson(res, 200, { prompt_id: promptId, number: numberOut, node_errors: v.nodeErrors }); // [POST_prompt.json]
    if (!faults.answerAfterFinish) return answer();
    // answerAfterFinish: the job runs now, the answer waits until it has finished (a busy tunnel).
    fired("lateAnswers");
    return new Promise((resolve) => {
      const waiting = lateAnswers.get(promptId) ?? [];
      waiting.push((ok) => {
        if (ok) answer();
        else res.destroy();
        resolve(undefined);
      });
      lateAnswers.set(promptId, waiting);
    });
  }

  function markDeleted(id) {
    const r = prompts.get(id);
    if (r) r.status = "deleted";
    settleLate(id, true); // a withheld answer is released when its job will never run
  }

  /** GET /history?max_items=N&offset=K (non-integers → 500). */
  function historySlice(q) {
    const toInt = (s) => {
      if (!/^\s*[+-]?\d+\s*$/.test(s)) throw new BadJson();
      return Number(s);
    };
    const maxItems = q.has("max_items") ? toInt(q.get("max_items")) : null;
    let offset = q.has("offset") ? toInt(q.get("offset")) : -1;
    // historyLagMs: entries still lagging do not exist yet, for slicing too.
    const visible = [...history].filter(([k]) => !lagging(k));
    if (visible.length < history.size) fired("laggedHistoryReads");
    if (offset < 0 && maxItems !== null) offset = visible.length - maxItems;
    const out = {};
    let i = 0,
      n = 0;
    for (const [k, v] of visible) {
      if (i >= offset) {
        out[k] = v;
        n++;
        if (maxItems !== null && n >= maxItems) break;
      }
      i++;
    }
    return out;
  }

  function inputExists(name) {
    const s = String(name);
    const ann = /^(.*) \[(input|output|temp)\]$/.exec(s);
    const [path, type] = ann ? [ann[1], ann[2]] : [s, "input"];
    const slash = path.lastIndexOf("/");
    return files.has(type, slash >= 0 ? path.slice(0, slash) : "", path.slice(slash + 1));
  }

  /** GET /view with the §11 status rules and aiohttp FileResponse headers [GET_view.json]. */
  function view(req, res, q) {
    if (!q.has("filename")) return sendEmpty(res, 404);
    let filename = q.get("filename") ?? "";
    let type = null;
    // folder_paths.annotated_filepath: "x.png [output]" overrides type (strips len+1 chars).
    for (const t of ["output", "input", "temp"]) {
      if (filename.endsWith(`[${t}]`)) {
        filename = filename.slice(0, -(t.length + 3));
        type = t;
        break;
      }
    }
    if (!filename || filename.startsWith("/") || filename.includes("..")) return sendEmpty(res, 400); // [GET_view__traversal.json]
    type ??= q.get("type") ?? "output";
    if (!["output", "input", "temp"].includes(type)) return sendEmpty(res, 400);
    let sub = "";
    if (q.has("subfolder")) {
      sub = q.get("subfolder") ?? "";
      if (!subfolderInside(sub)) return sendEmpty(res, 403);
      sub = normpath(sub) === "." ? "" : normpath(sub);
    }
    filename = filename.split("/").pop() ?? ""; // basename: "a/b.png" silently drops "a/"
    const f = files.get(/** @type {any} */ (type), sub, filename);
    if (!f) return sendEmpty(res, 404); // [GET_view__404.json]

    const size = f.bytes.length;
    const etag = `"${f.mtimeNs.toString(16)}-${size.toString(16)}"`;
    const lastModified = new Date(Math.floor(f.mtimeMs / 1000) * 1000).toUTCString();
    const base = {
      "Content-Disposition": `filename="${filename}"`,
      "Content-Type": mimeFor(filename),
      Etag: etag,
      "Last-Modified": lastModified,
    };
    if (
      req.headers["if-none-match"]
        ?.split(",")
        .map((s) => s.trim())
        .includes(etag)
    ) {
      res.writeHead(304, { Etag: etag, "Last-Modified": lastModified, Server: SERVER_HEADER });
      return res.end();
    }
    const range = req.headers.range;
    if (range) {
      const r = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
      let start = NaN,
        end = size - 1;
      if (r && r[1] !== "") {
        start = Number(r[1]);
        if (r[2] !== "") end = Math.min(Number(r[2]), size - 1);
      } else if (r && r[2] !== "") {
        start = Math.max(0, size - Number(r[2]));
      }
      if (!r || !(start <= end) || start >= size) {
        res.writeHead(416, {
          "Content-Range": `bytes */${size}`,
          "Content-Length": "0",
          "Content-Type": "application/octet-stream",
          Server: SERVER_HEADER,
        });
        return res.end();
      }
      const chunk = f.bytes.subarray(start, end + 1);
      res.writeHead(206, {
        ...base,
        "Content-Range": `bytes ${start}-${end}/${size}`,
        "Content-Length": String(chunk.length),
        "Accept-Ranges": "bytes",
        Server: SERVER_HEADER,
      });
      return res.end(chunk);
    }
    res.writeHead(200, { ...base, "Content-Length": String(size), "Accept-Ranges": "bytes", Server: SERVER_HEADER });
    if (faults.slowViewBodyMs > 0) {
      fired("slowViewBodies");
      return trickle(res, f.bytes, faults.slowViewBodyMs);
    }
    return res.end(f.bytes);
  }

  /** Sends a body in ten pieces spread over `ms`, as a slow tunnel delivers a large file. */
  function trickle(res, bytes, ms) {
    const pieces = 10;
    const size = Math.ceil(bytes.length / pieces);
    let sent = 0;
    const next = () => {
      if (res.destroyed) return;
      const piece = bytes.subarray(sent, sent + size);
      sent += piece.length;
      if (sent >= bytes.length) return res.end(piece);
      res.write(piece);
      setTimeout(next, ms / pieces);
    };
    next();
  }

  /** POST /upload/image (multipart): " (1)" rename unless identical bytes or overwrite [POST_upload_image.json]. */
  function upload(req, res, raw) {
    const form = parseMultipart(req.headers["content-type"] ?? "", raw);
    const image = form.get("image");
    const uploadType = form.has("type") ? form.get("type").text : "input";
    if (!["input", "temp", "output"].includes(uploadType)) throw new BadJson(); // unset variable → 500
    if (!image || image.filename === undefined) return sendEmpty(res, 400);
    let filename = image.filename;
    if (!filename) return sendEmpty(res, 400);
    const subfolder = form.has("subfolder") ? form.get("subfolder").text : "";
    const rel = normpath(`${subfolder ? normpath(subfolder) : "."}/${filename}`);
    if (rel.startsWith("/") || rel === ".." || rel.startsWith("../")) return sendEmpty(res, 400);
    const dir = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
    const overwrite = form.get("overwrite")?.text;
    let base = rel.slice(rel.lastIndexOf("/") + 1);
    if (!(overwrite === "true" || overwrite === "1")) {
      const dot = base.lastIndexOf(".");
      const [stem, ext] =
        dot > 0 && base.slice(0, dot).replace(/^\.+/, "") ? [base.slice(0, dot), base.slice(dot)] : [base, ""];
      for (let i = 1; files.has(uploadType, dir, base); i++) {
        if (files.get(uploadType, dir, base)?.bytes.equals(image.data))
          return sendJson(res, 200, { name: base, subfolder, type: uploadType });
        base = `${stem} (${i})${ext}`;
        filename = base;
      }
    }
    files.put(/** @type {any} */ (uploadType), dir, base, image.data);
    if (uploadType === "input") inputsChanged();
    return sendJson(res, 200, {
      name: filename === image.filename ? image.filename : base,
      subfolder,
      type: uploadType,
    });
  }

  // ---- fault helpers and control routes -----------------------------------------------------
  function accessFault(res, req) {
    if (faults.accessRedirect) {
      fired("accessRedirect");
      const { status, headers, body } = accessRedirectResponse(req);
      res.writeHead(status, headers);
      res.end(body);
      return true;
    }
    if (faults.accessHtml200) {
      fired("accessHtml200");
      res.writeHead(200, {
        "Content-Type": "text/html; charset=UTF-8",
        "Content-Length": String(Buffer.byteLength(ACCESS_LOGIN_HTML)),
        Server: "cloudflare",
        "CF-RAY": cfRay(),
      });
      res.end(ACCESS_LOGIN_HTML);
      return true;
    }
    return false;
  }

  async function control(req, res, url) {
    const p = url.pathname;
    if (p === "/__fake/faults" && req.method === "POST") {
      const body = JSON.parse((await readBody(req)).toString("utf8") || "{}");
      if (body.reset) setFaults(DEFAULT_FAULTS());
      const { reset, ...rest } = body;
      return sendJson(res, 200, setFaults(rest));
    }
    if (p === "/__fake/faults" && req.method === "GET") return sendJson(res, 200, faults);
    if (p === "/__fake/restart" && req.method === "POST") {
      restart();
      return sendJson(res, 200, { ok: true });
    }
    if (p === "/__fake/drop-sockets" && req.method === "POST") return sendJson(res, 200, { dropped: dropSockets() });
    if (p === "/__fake/timing" && req.method === "POST") {
      const body = JSON.parse((await readBody(req)).toString("utf8") || "{}");
      try {
        return sendJson(res, 200, setTiming(body));
      } catch (err) {
        if (!(err instanceof TimingError)) throw err;
        return sendJson(res, 400, { error: err.message });
      }
    }
    if (p === "/__fake/timing" && req.method === "GET") return sendJson(res, 200, timing());
    if (p === "/__fake/connections" && req.method === "GET") return sendJson(res, 200, connectionsView());
    if (p === "/__fake/faults-fired" && req.method === "GET") return sendJson(res, 200, faultsFired);
    if (p === "/__fake/reset-counters" && req.method === "POST") {
      resetCounters();
      return sendJson(res, 200, { ok: true });
    }
    if (p === "/__fake/finish-times" && req.method === "GET")
      return sendJson(res, 200, Object.fromEntries(finishTimes));
    if (p === "/__fake/state" && req.method === "GET") {
      return sendJson(res, 200, {
        counter,
        running: running?.prompt_id ?? null,
        pending: [...queue].sort((a, b) => (less(a, b) ? -1 : 1)).map((i) => i.prompt_id),
        history: [...history.keys()],
        sockets: [...sockets.keys()],
        ws_upgrade_attempts: wsUpgradeAttempts,
        faults,
        faults_fired: faultsFired,
        connections: connectionsView(),
        timing: timing(),
        files: files.list(),
        prompts: Object.fromEntries(
          [...prompts].map(([k, r]) => [k, { status: r.status, number: r.number, client_id: r.client_id }]),
        ),
      });
    }
    return sendText(res, 404, "404: Not Found");
  }

  /** @param {Partial<Faults>} partial */
  function setFaults(partial) {
    for (const [k, v] of Object.entries(partial ?? {})) {
      if (!(k in faults)) throw new Error(`unknown fault ${k}`);
      /** @type {any} */ (faults)[k] = v;
    }
    if ("dropSocketsAfterEvents" in (partial ?? {})) {
      // 0 and null both mean "off" (0 used to arm a drop at the very next event).
      const n = partial.dropSocketsAfterEvents;
      if (n === 0 || n === null || n === undefined) faults.dropSocketsAfterEvents = null;
      dropCountdown = faults.dropSocketsAfterEvents;
    }
    if ("idleSocketCloseMs" in (partial ?? {})) armIdleTimer();
    return faults;
  }

  /** @returns {Timing} a copy of the current timing */
  function timing() {
    const o = hub.options;
    return { nodeDelayMs: o.nodeDelayMs, stepDelayMs: o.stepDelayMs, nodeDelayMsByClass: { ...o.nodeDelayMsByClass } };
  }
  /**
   * Change durations for jobs that start from now on. `nodeDelayMsByClass` replaces the whole map
   * (`{}` clears it). Throws TimingError on an unknown field or a value that is not a number ≥ 0.
   * @param {Partial<Timing>} partial
   */
  function setTiming(partial) {
    const t = partial ?? {};
    const ms = (name, v) => {
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new TimingError(`${name} must be a number ≥ 0`);
      return v;
    };
    /** @type {Partial<Timing>} */
    const next = {};
    for (const [k, v] of Object.entries(t)) {
      if (k === "nodeDelayMs" || k === "stepDelayMs") next[k] = ms(k, v);
      else if (k === "nodeDelayMsByClass") {
        if (v === null || typeof v !== "object" || Array.isArray(v)) throw new TimingError(`${k} must be an object`);
        next[k] = Object.fromEntries(Object.entries(v).map(([cls, d]) => [cls, ms(`${k}.${cls}`, d)]));
      } else throw new TimingError(`unknown timing field ${k}`);
    }
    Object.assign(hub.options, next);
    return timing();
  }

  /** Socket counters as served: `{clientId: {opened, closed, open}}`. */
  function connectionsView() {
    return Object.fromEntries(
      [...connections].map(([id, c]) => [id, { opened: c.opened, closed: c.closed, open: c.opened - c.closed }]),
    );
  }
  let counterEpoch = 0; // sockets opened before resetCounters() do not count their close
  function resetCounters() {
    connections.clear();
    Object.assign(faultsFired, ZERO_FIRED());
    counterEpoch++;
  }

  function restart() {
    hub.generation++;
    queue = [];
    running = null;
    history = new Map();
    counter = 0;
    runningClientId = null;
    hub.cache.clear();
    hub.interruptFlag = false;
    hub.lastNodeId = null;
    files.clearType("temp");
    for (const r of prompts.values()) if (r.status === "pending" || r.status === "running") r.status = "lost";
    cutAllLate(); // a restarting ComfyUI cuts the connections still waiting for an answer
    terminateAll(); // not the dropSockets fault: not counted in faultsFired
    dropping = false;
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
    startWorker();
  }
  function startWorker() {
    workerLoop(hub.generation).catch((e) => console.error("[fake-comfyui] worker:", e));
  }

  // ---- WebSocket ----------------------------------------------------------------------------
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  let wsUpgradeAttempts = 0;

  server.on("upgrade", async (req, socket, head) => {
    wsUpgradeAttempts++; // lets tests check that a refusing server sees backoff, not a storm
    const url = new URL(req.url ?? "/", "http://x");
    const rawAnswer = (status, reason, headers, body = "") => {
      const lines = [
        `HTTP/1.1 ${status} ${reason}`,
        ...Object.entries({ ...headers, "Content-Length": Buffer.byteLength(body), Connection: "close" }).map(
          ([k, v]) => `${k}: ${v}`,
        ),
      ];
      socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
    };
    socket.on("error", () => {});
    if (faults.slowMs > 0) {
      fired("slow");
      await sleep(faults.slowMs);
    }
    if (closed) return socket.destroy();
    if (faults.accessRedirect) {
      fired("accessRedirect");
      const r = accessRedirectResponse(req);
      return rawAnswer(r.status, "Found", r.headers, r.body);
    }
    if (faults.accessHtml200) {
      fired("accessHtml200");
      return rawAnswer(
        200,
        "OK",
        { "Content-Type": "text/html; charset=UTF-8", Server: "cloudflare" },
        ACCESS_LOGIN_HTML,
      );
    }
    if (faults.http500) {
      fired("http500");
      return rawAnswer(
        500,
        "Internal Server Error",
        { "Content-Type": "text/plain; charset=utf-8", Server: SERVER_HEADER },
        ERROR_500,
      );
    }
    if (url.pathname !== "/ws" && url.pathname !== "/api/ws")
      return rawAnswer(404, "Not Found", { "Content-Type": "text/plain; charset=utf-8" }, "404: Not Found");
    if (faults.refuseWebSocket) {
      fired("refusedUpgrades");
      return rawAnswer(
        403,
        "Forbidden",
        { "Content-Type": "text/plain; charset=utf-8", Server: SERVER_HEADER },
        "403: Forbidden",
      );
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, url.searchParams.get("clientId") ?? ""));
  });

  /** server.py websocket_handler (0.3.64). */
  function onConnection(ws, clientId) {
    const sid = clientId || randomUUID().replaceAll("-", ""); // uuid4().hex [WS_ws__connect_no_client_id.json]
    sockets.delete(sid); // reusing a clientId replaces the old registration (the old socket stays open)
    sockets.set(sid, ws);
    allSockets.add(ws);
    const info = { sid, lastFrame: performance.now(), previewMetadata: false };
    socketInfo.set(ws, info);
    const c = connections.get(sid) ?? { opened: 0, closed: 0 };
    connections.set(sid, { opened: c.opened + 1, closed: c.closed }); // a new object: copies stay snapshots
    const epoch = counterEpoch;
    wsSend(ws, pyDumps({ type: "status", data: { ...statusData(), sid } }));
    if (runningClientId === sid && hub.lastNodeId !== null)
      wsSend(ws, pyDumps({ type: "executing", data: { node: hub.lastNodeId } }));
    let first = true;
    const heard = () => {
      info.lastFrame = performance.now(); // any client frame restarts the idle clock
    };
    ws.on("ping", heard);
    ws.on("pong", heard);
    ws.on("message", (data, isBinary) => {
      heard();
      if (isBinary) return;
      let msg;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        return;
      } // invalid JSON: logged and ignored
      if (first && msg && msg.type === "feature_flags") {
        info.previewMetadata = msg.data?.supports_preview_metadata === true; // previews as type 4 (§8.5)
        wsSend(ws, pyDumps({ type: "feature_flags", data: FEATURES })); // [WS_ws__connect_feature_flags.json]
      }
      first = false; // later messages (e.g. {"type":"ping"}) are ignored
    });
    ws.on("error", () => {});
    ws.on("close", () => {
      socketInfo.delete(ws);
      if (epoch === counterEpoch) {
        const now = connections.get(sid) ?? { opened: 0, closed: 0 };
        connections.set(sid, { opened: now.opened, closed: now.closed + 1 });
      }
      allSockets.delete(ws);
      // ComfyUI pops the sid on close even if a newer socket took it over (§8.1 caveat); emulated.
      sockets.delete(sid);
    });
  }

  // ---- start --------------------------------------------------------------------------------
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(undefined);
    });
  });
  startWorker();
  const addr = /** @type {import("node:net").AddressInfo} */ (server.address());
  const urlHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;

  /** @type {FakeComfy} */
  const fake = {
    port: addr.port,
    url: `http://${urlHost}:${addr.port}`,
    faults,
    finishTimes,
    prompts,
    files,
    models,
    setFaults,
    setTiming,
    connections,
    faultsFired,
    resetCounters,
    restart,
    dropSockets,
    async close() {
      if (closed) return;
      closed = true;
      hub.generation++;
      if (wake) {
        const w = wake;
        wake = null;
        w();
      }
      if (idleTimer) clearInterval(idleTimer);
      cutAllLate();
      terminateAll();
      wss.close();
      await new Promise((r) => {
        server.close(() => r(undefined));
        server.closeAllConnections?.();
      });
    },
  };
  return fake;
}

// ---- small helpers ------------------------------------------------------------------------------

/** A bad setTiming() argument (POST /__fake/timing answers 400). */
export class TimingError extends Error {}

/** A request that real ComfyUI would answer with aiohttp's plain-text 500. */
class BadJson extends Error {
  constructor(status = 500, reason = "Internal Server Error") {
    super(reason);
    this.status = status;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const iter = (v) => (Array.isArray(v) ? v : typeof v === "string" ? [...v] : []);

/** request.json(): non-JSON (or empty) → 500 text/plain [POST_prompt__error_invalid_json.json]. */
function parseJson(raw) {
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch {
    throw new BadJson();
  }
}

/** @param {import("node:http").IncomingMessage} req @returns {Promise<Buffer>} */
async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 100 * 1024 * 1024) throw new BadJson(413, "Request Entity Too Large"); // --max-upload-size 100 MB
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

function sendRaw(res, status, contentType, body) {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body, "utf8");
  res.writeHead(status, { "Content-Type": contentType, "Content-Length": String(buf.length), Server: SERVER_HEADER });
  res.end(buf);
}
/** aiohttp json_response: Python json.dumps bytes, `application/json; charset=utf-8`. */
const sendJson = (res, status, obj) => sendRaw(res, status, "application/json; charset=utf-8", pyDumps(obj));
const sendText = (res, status, text) => sendRaw(res, status, "text/plain; charset=utf-8", text);
/** web.Response(): empty body, octet-stream, Content-Length 0 [POST_queue__delete.json]. */
function sendEmpty(res, status = 200) {
  res.writeHead(status, { "Content-Length": "0", "Content-Type": "application/octet-stream", Server: SERVER_HEADER });
  res.end();
}

/**
 * Minimal multipart/form-data parser.
 * @returns {Map<string, {data: Buffer, text: string, filename?: string}>}
 */
function parseMultipart(contentType, body) {
  const out = new Map();
  const bm = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!bm) return out;
  const delim = Buffer.from(`--${bm[1] ?? bm[2]}`);
  let pos = body.indexOf(delim);
  while (pos >= 0) {
    const start = pos + delim.length;
    if (body.subarray(start, start + 2).toString() === "--") break;
    const next = body.indexOf(delim, start);
    if (next < 0) break;
    const part = body.subarray(start + 2, next - 2); // skip CRLF after delimiter and before the next
    const sep = part.indexOf("\r\n\r\n");
    if (sep >= 0) {
      const head = part.subarray(0, sep).toString("utf8");
      const data = part.subarray(sep + 4);
      const name = /name="([^"]*)"/i.exec(head)?.[1];
      const fn = /filename="([^"]*)"/i.exec(head)?.[1];
      if (name !== undefined) out.set(name, { data: Buffer.from(data), text: data.toString("utf8"), filename: fn });
    }
    pos = next;
  }
  return out;
}

const cfRay = () => `${randomUUID().replaceAll("-", "").slice(0, 16)}-SJC`;

/** What Cloudflare Access answers when the policy is not "Service Auth" (§17.2). */
function accessRedirectResponse(req) {
  const host = (req.headers.host ?? "comfy.example.com").replace(/:\d+$/, "");
  const kid = "4c5a3b1e9f0d2c7a8b6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a";
  const location = `https://team.cloudflareaccess.com/cdn-cgi/access/login/${host}?kid=${kid}&redirect_url=${encodeURIComponent(req.url ?? "/")}`;
  const body =
    "<html>\r\n<head><title>302 Found</title></head>\r\n<body>\r\n<center><h1>302 Found</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";
  return {
    status: 302,
    body,
    headers: {
      Location: location,
      "Content-Type": "text/html",
      "Content-Length": String(Buffer.byteLength(body)),
      Server: "cloudflare",
      "CF-RAY": cfRay(),
      "Cache-Control": "private, max-age=0, no-store, no-cache, must-revalidate, post-check=0, pre-check=0",
      Expires: "Thu, 01 Jan 1970 00:00:01 GMT",
    },
  };
}

const ACCESS_LOGIN_HTML = `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Sign in ・ Cloudflare Access</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
</head>
<body>
  <div class="AuthBox">
    <h1>Sign in</h1>
    <p>to continue to <strong>comfy.example.com</strong></p>
    <form method="post" action="https://team.cloudflareaccess.com/cdn-cgi/access/login">
      <label for="email">Email</label>
      <input id="email" name="email" type="email" autocomplete="email">
      <button type="submit">Send me a code</button>
    </form>
    <p class="Footer">Powered by Cloudflare Access</p>
  </div>
</body>
</html>
`;
