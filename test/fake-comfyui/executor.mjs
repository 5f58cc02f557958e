// Runs one queued prompt the way ComfyUI 0.3.64's PromptExecutor does, emitting the WebSocket
// events in the recorded order (§8.3, WS_ws.json):
//   execution_start, execution_cached, then per node: progress_state(running), executing,
//   [progress_state + progress per sampler step], executed (output nodes), progress_state(finished);
//   then execution_success | execution_error | execution_interrupted.
// The caller (server.mjs) writes history, broadcasts `status`, then sends `executing {node: null}`.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { PyFloat, num, pyDumps, pyRepr } from "./pyjson.mjs";
import { NODES, passthrough, formatInput } from "./nodes.mjs";

const ERR = JSON.parse(readFileSync(fileURLToPath(new URL("./samples/error_payloads.json", import.meta.url)), "utf8"));
/** The execution.py frames every node error starts with [WS_ws__execution_error.json]. */
const EXEC_FRAMES = ERR.imageToMask.traceback.slice(0, 4);
const OOM_TIPS =
  "This error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked before you might have accidentally set the batch_size to a large number.";

/** Longest uninterrupted sleep inside a long node delay (interrupt/restart are seen this fast). */
const SLICE_MS = 50;

export class Interrupted extends Error {}
/** Thrown inside a running job when the fake restarts: the job vanishes without further events. */
export class Aborted extends Error {}
class NodeFailure extends Error {
  /** @param {{type: string, message: string, oom?: boolean, useRecordedImageToMask?: boolean}} info */
  constructor(info) {
    super(info.message);
    this.info = info;
  }
}

/**
 * @typedef {object} QueueItem
 * @property {number} number         heap key
 * @property {number|PyFloat} numberOut  as echoed in /queue and history (float when sent explicitly)
 * @property {string} prompt_id
 * @property {Record<string, any>} prompt
 * @property {Record<string, any>} extra_data
 * @property {string[]} outputs      outputs_to_execute
 */

/**
 * What the executor needs from the server.
 * @typedef {object} Hub
 * @property {(event: string, data: object, sid: string|null) => void} send   sid null = broadcast
 * @property {import("./files.mjs").FileStore} files
 * @property {Map<string, {outputs: any[], ui: any}>} cache
 * @property {Record<string, any>} objectInfo
 * @property {{stepDelayMs: number, nodeDelayMs: number, nodeDelayMsByClass: Record<string, number>}} options
 *   the timing; each job takes a copy when it starts (setTiming applies to later jobs)
 * @property {{failNodeClass?: string|null, previewFrames?: boolean}} faults
 * @property {(event: "failedNodes"|"previewFrames", n?: number) => void} fired  count a fault that took effect
 * @property {(promptId: string, nodeId: string, sid: string|null) => void} preview  send a binary preview frame
 * @property {boolean} interruptFlag
 * @property {number} generation
 * @property {string|null} lastNodeId
 */

/**
 * @param {Hub} hub @param {QueueItem} item
 * @returns {Promise<{success: boolean, messages: [string, object][], outputs: Map<string, any>, meta: Map<string, any>}>}
 */
export async function executePrompt(hub, item) {
  const gen = hub.generation;
  const { prompt, prompt_id: promptId } = item;
  const clientId = item.extra_data.client_id ?? null;
  const objectInfo = hub.objectInfo;
  /** @type {[string, object][]} */
  const messages = [];
  const addMessage = (event, data, broadcast) => {
    data = { ...data, timestamp: Date.now() };
    messages.push([event, data]);
    if (clientId !== null || broadcast) hub.send(event, data, clientId);
  };
  const sleep = async (ms) => {
    await new Promise((r) => (ms > 0 ? setTimeout(r, ms) : setImmediate(r)));
    if (hub.generation !== gen) throw new Aborted();
  };
  /** A silent node delay, in slices of ≤ 100 ms so interrupt and restart() stop it promptly. */
  const nodeSleep = async (ms) => {
    const end = performance.now() + ms;
    do {
      await sleep(Math.min(SLICE_MS, Math.max(0, end - performance.now())));
      if (hub.interruptFlag) throw new Interrupted();
    } while (performance.now() < end);
  };
  // Timing is fixed when the job starts: setTiming() applies to jobs that start later.
  const options = { ...hub.options, nodeDelayMsByClass: { ...hub.options.nodeDelayMsByClass } };
  const byClass = options.nodeDelayMsByClass;

  hub.interruptFlag = false; // ComfyUI resets the flag when a prompt starts
  addMessage("execution_start", { prompt_id: promptId }, false);

  // Classic cache: keep only results whose signature appears in this prompt, then report them.
  const sigs = signatures(prompt, hub);
  const wanted = new Set(Object.values(sigs));
  for (const k of [...hub.cache.keys()]) if (!wanted.has(k)) hub.cache.delete(k);
  const isCached = (id) => hub.cache.has(sigs[id]);
  addMessage("execution_cached", { nodes: Object.keys(prompt).filter(isCached), prompt_id: promptId }, false);
  const currentOutputs = Object.keys(prompt); // the cache's node ids (all prompt nodes)

  const progress = new ProgressRegistry(hub, promptId, clientId);
  const list = new ExecutionList(prompt, objectInfo, isCached);
  for (const o of item.outputs) list.addNode(o);

  /** @type {Map<string, any[]>} */
  const values = new Map();
  /** @type {string[]} */
  const executed = [];
  // Maps: node ids are numeric-looking, and Python dicts keep execution order.
  /** @type {Map<string, any>} */
  const ui = new Map(),
    meta = new Map();
  let failure = null;

  while (!list.isEmpty()) {
    const id = list.stage();
    const node = prompt[id];
    const classType = node.class_type;
    const display = { node: id, display_node: id, prompt_id: promptId };

    if (isCached(id)) {
      // A cached output node re-sends its old UI output (old filenames) [WS_ws__cached_rerun.json].
      const c = hub.cache.get(sigs[id]);
      if (clientId !== null) {
        hub.send("executed", { ...display, output: c.ui ?? null }, clientId);
        if (c.ui) {
          ui.set(id, c.ui);
          meta.set(id, metaFor(id));
        }
      }
      progress.finish(id);
      values.set(id, c.outputs);
      list.complete(id);
      continue;
    }

    progress.start(id);
    hub.lastNodeId = id;
    if (clientId !== null) hub.send("executing", display, clientId);

    const inputs = resolveInputs(node, (from) => values.get(from) ?? hub.cache.get(sigs[from])?.outputs);
    try {
      if (hub.interruptFlag) throw new Interrupted(); // checked before every node (§6)
      // A class with its own delay is silent for that long (model load, VAE decode, video encode);
      // samplers add their per-step progress (stepDelayMs each) after it.
      if (Object.hasOwn(byClass, classType)) await nodeSleep(byClass[classType]);
      else await sleep(options.nodeDelayMs);
      if (hub.faults.failNodeClass && hub.faults.failNodeClass === classType) {
        hub.fired("failedNodes");
        throw new NodeFailure({
          type: "torch.OutOfMemoryError",
          message: "CUDA out of memory. Tried to allocate 2.00 GiB",
          oom: true,
        });
      }
      /** @type {import("./nodes.mjs").NodeContext} */
      const ctx = {
        id,
        classType,
        inputs,
        prompt,
        extraData: item.extra_data,
        files: hub.files,
        options,
        sleep,
        checkInterrupt: () => {
          if (hub.interruptFlag) throw new Interrupted();
        },
        progress: (value, max) => {
          progress.update(id, value, max);
          hub.send("progress", { value, max, prompt_id: promptId, node: id }, clientId);
          if (hub.faults.previewFrames) hub.preview(promptId, id, clientId);
        },
        fail: (info) => {
          throw new NodeFailure(info);
        },
      };
      const impl = NODES[classType];
      let result;
      try {
        result = impl ? await impl(ctx) : passthrough(ctx, objectInfo[classType].output ?? []);
      } catch (ex) {
        if (ex instanceof Interrupted || ex instanceof Aborted || ex instanceof NodeFailure) throw ex;
        if (ex && /** @type {any} */ (ex).pyType) throw new NodeFailure({ type: ex.pyType, message: ex.message });
        throw new NodeFailure({ type: "Exception", message: String(/** @type {any} */ (ex)?.message ?? ex) });
      }
      if (hub.generation !== gen) throw new Aborted();
      if (result.ui && Object.keys(result.ui).length > 0) {
        ui.set(id, result.ui);
        meta.set(id, metaFor(id));
        if (clientId !== null) hub.send("executed", { ...display, output: result.ui }, clientId);
      }
      hub.cache.set(sigs[id], { outputs: result.outputs, ui: result.ui ?? null });
      values.set(id, result.outputs);
      progress.finish(id);
      executed.push(id);
      list.complete(id);
    } catch (ex) {
      if (ex instanceof Aborted) throw ex;
      failure = { id, classType, ex, inputs };
      break;
    }
  }

  if (failure === null) {
    addMessage("execution_success", { prompt_id: promptId }, false);
  } else if (failure.ex instanceof Interrupted) {
    // Broadcast when the prompt has no client_id [WS_ws__slow_interrupt_delete.json].
    addMessage(
      "execution_interrupted",
      { prompt_id: promptId, node_id: failure.id, node_type: failure.classType, executed: [...executed] },
      true,
    );
  } else {
    addMessage("execution_error", errorPayload(failure, promptId, executed, currentOutputs, prompt, objectInfo), false);
  }
  hub.lastNodeId = null;
  return { success: failure === null, messages, outputs: ui, meta };
}

const metaFor = (id) => ({ node_id: id, display_node: id, parent_node: null, real_node_id: id });

/** Links become upstream values (from this run, or from the cache for nodes never staged). */
function resolveInputs(node, outputsOf) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const [k, v] of Object.entries(node.inputs ?? {})) {
    out[k] = Array.isArray(v) ? outputsOf(v[0])?.[v[1]] : num(v);
  }
  return out;
}

/** execution_error data (§8.4): exception text ends with "\n" (+ tips for OOM). */
function errorPayload(failure, promptId, executed, currentOutputs, prompt, objectInfo) {
  const { id, classType, ex, inputs } = failure;
  const info = ex instanceof NodeFailure ? ex.info : { type: "Exception", message: String(ex?.message ?? ex) };
  const node = prompt[id];
  let currentInputs = {};
  for (const k of Object.keys(node.inputs ?? {})) currentInputs[k] = [formatInput(inputs[k])];
  const hidden = objectInfo[classType]?.input?.hidden ?? {};
  if ("prompt" in hidden) currentInputs.prompt = [pyRepr(prompt)];
  if ("extra_pnginfo" in hidden) currentInputs.extra_pnginfo = [null];
  if ("unique_id" in hidden) currentInputs.unique_id = [id];
  let traceback = info.message.includes("outside the output folder")
    ? [
        ...EXEC_FRAMES,
        '  File "/opt/ComfyUI/nodes.py", line 1600, in save_images\n    full_output_folder, filename, counter, subfolder, filename_prefix = folder_paths.get_save_image_path(filename_prefix, self.output_dir, images[0].shape[1], images[0].shape[0])\n',
        '  File "/opt/ComfyUI/folder_paths.py", line 476, in get_save_image_path\n    raise Exception(err)\n',
      ]
    : [...EXEC_FRAMES];
  if (info.oom) {
    traceback = [
      ...EXEC_FRAMES,
      '  File "/opt/ComfyUI/nodes.py", line 1525, in sample\n    return common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=denoise)\n           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n',
      '  File "/opt/ComfyUI/nodes.py", line 1492, in common_ksampler\n    samples = comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,\n              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n',
      '  File "/opt/ComfyUI/comfy/sample.py", line 45, in sample\n    samples = sampler.sample(noise, positive, negative, cfg=cfg, latent_image=latent_image, start_step=start_step, last_step=last_step, force_full_denoise=force_full_denoise, denoise_mask=noise_mask, sigmas=sigmas, callback=callback, disable_pbar=disable_pbar, seed=seed)\n',
      '  File "/opt/ComfyUI/comfy/samplers.py", line 1163, in sample\n    return sample(self.model, noise, positive, negative, cfg, self.device, sampler, sigmas, self.model_options, latent_image=latent_image, denoise_mask=denoise_mask, callback=callback, disable_pbar=disable_pbar, seed=seed)\n',
      '  File "/opt/ComfyUI/comfy/ldm/modules/attention.py", line 527, in attention_pytorch\n    out = comfy.ops.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)\n',
    ];
  }
  if (info.useRecordedImageToMask) {
    traceback = ERR.imageToMask.traceback;
    currentInputs = { ...ERR.imageToMask.current_inputs, channel: [inputs.channel] };
  }
  return {
    prompt_id: promptId,
    node_id: id,
    node_type: classType,
    executed: [...executed],
    exception_message: `${info.message}\n${info.oom ? OOM_TIPS : ""}`,
    exception_type: info.type,
    traceback,
    current_inputs: currentInputs,
    current_outputs: currentOutputs,
  };
}

/**
 * Cache keys: class + literal inputs + upstream signatures (ComfyUI's CacheKeySetInputSignature),
 * so an identical node in an identical sub-graph is served from cache even across prompts.
 */
function signatures(prompt, hub) {
  /** @type {Record<string, string>} */
  const memo = {};
  const raw = (id, seen = new Set()) => {
    if (memo[id]) return memo[id];
    if (seen.has(id)) return "cycle";
    seen.add(id);
    const node = prompt[id];
    const ins = Object.keys(node.inputs ?? {})
      .sort()
      .map((k) => {
        const v = node.inputs[k];
        return [k, Array.isArray(v) && v[0] in prompt ? ["link", raw(v[0], seen), v[1]] : v];
      });
    let changed = null;
    if (node.class_type === "LoadImage") {
      // IS_CHANGED: file content hash
      const f = hub.files.get("input", "", String(node.inputs?.image ?? ""));
      changed = f ? createHash("sha256").update(f.bytes).digest("hex") : null;
    }
    return (memo[id] = createHash("sha1")
      .update(pyDumps([node.class_type, ins, changed]))
      .digest("hex"));
  };
  return Object.fromEntries(Object.keys(prompt).map((id) => [id, raw(id)]));
}

/** progress_state messages: every started node with value/max/state (§8.2). */
class ProgressRegistry {
  constructor(hub, promptId, clientId) {
    Object.assign(this, { hub, promptId, clientId });
    /** @type {Map<string, {state: string, value: any, max: any, lastSent?: number, lastValue?: number}>} */
    this.nodes = new Map();
  }
  ensure(id) {
    if (!this.nodes.has(id)) this.nodes.set(id, { state: "pending", value: 0, max: 1 });
    return /** @type {any} */ (this.nodes.get(id));
  }
  start(id) {
    Object.assign(this.ensure(id), { state: "running", value: new PyFloat(0), max: new PyFloat(1) });
    this.send();
  }
  finish(id) {
    const e = this.ensure(id);
    e.state = "finished";
    e.value = e.max;
    this.send();
  }
  /** Throttled: first and last update, else only after ≥100 ms and ≥0.5 % change. */
  update(id, value, max) {
    const e = this.ensure(id);
    e.value = value;
    e.max = max;
    const now = performance.now();
    const first = e.lastSent === undefined;
    if (first || value >= max || (now - e.lastSent >= 100 && Math.abs(value - (e.lastValue ?? 0)) / max >= 0.005)) {
      e.lastSent = now;
      e.lastValue = value;
      this.send();
    }
  }
  send() {
    /** @type {Map<string, object>} */
    const nodes = new Map();
    for (const [id, e] of this.nodes) {
      if (e.state === "pending") continue;
      nodes.set(id, {
        value: e.value,
        max: e.max,
        state: e.state,
        node_id: id,
        prompt_id: this.promptId,
        display_node_id: id,
        parent_node_id: null,
        real_node_id: id,
      });
    }
    this.hub.send("progress_state", { prompt_id: this.promptId, nodes }, this.clientId);
  }
}

/**
 * ComfyUI's ExecutionList (a topological sort staged one node at a time) including its
 * "UX friendly" pick: output nodes first, then nodes one or two hops before an output.
 * Cached upstream nodes are never staged. SD1.5 graph order: 4, 5, 7, 6, 3, 8, 9.
 */
class ExecutionList {
  constructor(prompt, objectInfo, isCached) {
    Object.assign(this, { prompt, objectInfo, isCached });
    /** @type {Map<string, true>} */ this.pending = new Map();
    /** @type {Map<string, number>} */ this.blockCount = new Map();
    /** @type {Map<string, Set<string>>} */ this.blocking = new Map();
  }
  isOutput(id) {
    return this.objectInfo[this.prompt[id].class_type]?.output_node === true;
  }
  addNode(start) {
    const stack = [start];
    const links = [];
    while (stack.length) {
      const id = /** @type {string} */ (stack.pop());
      if (this.pending.has(id)) continue;
      this.pending.set(id, true);
      this.blockCount.set(id, 0);
      this.blocking.set(id, new Set());
      for (const v of Object.values(this.prompt[id].inputs ?? {})) {
        if (!Array.isArray(v) || !(v[0] in this.prompt)) continue;
        if (!this.isCached(v[0])) stack.push(v[0]);
        links.push([v[0], id]);
      }
    }
    for (const [from, to] of links) {
      if (this.isCached(from)) continue;
      this.addNode(from);
      const b = /** @type {Set<string>} */ (this.blocking.get(from));
      if (!b.has(to)) {
        b.add(to);
        this.blockCount.set(to, (this.blockCount.get(to) ?? 0) + 1);
      }
    }
  }
  isEmpty() {
    return this.pending.size === 0;
  }
  stage() {
    const ready = [...this.pending.keys()].filter((id) => this.blockCount.get(id) === 0);
    if (ready.length === 0) throw new Error("dependency cycle"); // validation would normally catch it
    const blockedBy = (id) => [...(this.blocking.get(id) ?? [])];
    return (
      ready.find((id) => this.isOutput(id)) ??
      ready.find((id) => blockedBy(id).some((b) => this.isOutput(b))) ??
      ready.find((id) => blockedBy(id).some((b) => blockedBy(b).some((c) => this.isOutput(c)))) ??
      ready[0]
    );
  }
  complete(id) {
    this.pending.delete(id);
    for (const to of this.blocking.get(id) ?? [])
      this.blockCount.set(to, /** @type {number} */ (this.blockCount.get(to)) - 1);
    this.blocking.delete(id);
  }
}
