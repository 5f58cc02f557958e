/**
 * Running a workflow, whichever tool asked: fill every parameter (call > environment default >
 * the workflow's sidecar default > built-in namespace default; a fresh seed), check the result
 * against the caller's limits (pixels, frames, steps; input image sizes), choose the backend
 * (pinned, or routed by the coordinator to one that has the models), upload input media there,
 * check values against its live combo lists, render through the PARAM_* bindings (never a
 * literal placeholder to ComfyUI), submit to the studio (which counts the caller's open jobs and
 * jobs per minute), wait with progress, answer.
 */
import type { CallToolResult, ServerContext } from "@modelcontextprotocol/server";
import type { ComfyClient } from "../comfy/client";
import type { ComfyGraph } from "../comfy/types";
import { type Limit, limitsFor } from "../config";
import { graphRequirements, type RouteDecision, type RouteRequest } from "../pool/routing";
import { failure, success, ToolFailure } from "../mcp/results";
import type { AssetView, JobError, Scalar } from "../studio/records";
import { checkValue, type ParamSpec, type WorkflowDefinition } from "../workflows/definition.ts";
import { MODEL_FOLDER_OF, comboOptions, forgetCombos } from "../workflows/combos";
import { ASSET_ID, resolveMedia } from "../workflows/media";
import { randomSeed, RenderError, renderGraph } from "../workflows/params.ts";
import { requireScope, type ToolContext } from "./context";
import { effectiveDefaults } from "./configuration";
import { checkGraphLimits } from "./limits";
import { assetLinks, describeJob, jobResult } from "./schemas";
import { waitForJob } from "./wait";

export type ValueSource = "call" | "runtime" | "persisted" | "env" | "workflow" | "built-in" | "random" | "replayed";

export interface RunRequest {
  workflow: WorkflowDefinition;
  /** Tool name recorded on the job and its assets. */
  tool: string;
  /** Values given by the caller (already schema-checked), by parameter name. */
  values: Record<string, unknown>;
  /** Values to reuse as if given (regenerate), below the caller's. */
  replayed?: Record<string, Scalar>;
  waitSeconds?: number;
  /** Extra fields for the structured result (e.g. ignored overrides). */
  extra?: Record<string, unknown>;
  /** A backend the caller pinned. */
  backend?: string;
  /** A backend to use when it qualifies (regenerate: where the original ran). */
  preferBackend?: string;
  /** Move the job elsewhere if its backend goes down. */
  resubmit?: boolean;
}

const MEDIA_TYPES = new Set(["image", "audio", "video"]);
/** Values the gateway may replace with an installed model, so a backend lacking them only ranks lower. */
const SWAPPABLE_SOURCES = new Set<ValueSource>(["workflow", "built-in", "env"]);

export async function runWorkflow(
  tools: ToolContext,
  request: RunRequest,
  ctx: ServerContext,
): Promise<CallToolResult> {
  requireScope(tools, "generate");
  const { workflow } = request;
  const promptId = crypto.randomUUID();
  const signal = ctx.mcpReq.signal;
  const limits = limitsFor(tools.config, tools.principal);
  const { values, sources } = await fillParameters(tools, request);
  // Before anything is uploaded or routed: the graph as it will run, defaults and overrides applied.
  const planned = renderWithoutMedia(workflow, values);
  checkGraphLimits(planned, workflow.params, limits);
  // With one backend there is nothing to choose: no coordinator round trip.
  const routing = tools.backends.multiple
    ? routeRequest(workflow, planned, sources)
    : { requirements: [], tags: workflow.backendTags };
  const decision = await chooseBackend(
    tools,
    routing,
    request.backend,
    await inputsHome(tools, request, values, sources),
  );
  if (!decision.ok) throw new ToolFailure(decision.message, { kind: decision.kind });
  const comfy = tools.backends.client(decision.backend);
  const quota = { openJobs: limits.openJobs, jobsPerMinute: limits.jobsPerMinute };
  // Input media are fetched and uploaded before submission: a caller already at its quota is told
  // first, not after a download and an upload (the studio still counts atomically at submit).
  const hasMedia = workflow.params.some((param) => MEDIA_TYPES.has(param.type));
  const early = hasMedia && hasQuota(quota) ? await tools.studio.checkQuota(quota) : undefined;
  if (early) return refusedJob(early);
  const notes = await prepareValues(tools, comfy, workflow, values, sources, limits.inputImageSide, signal);
  const graph = render(workflow, values);
  // A unique prefix keeps this job's files together in ComfyUI's output/ and easy to prune
  // (unless the workflow lets the caller choose it through a parameter).
  const boundPrefixes = new Set(
    workflow.params.flatMap((param) =>
      param.bindings.filter((b) => b.input === "filename_prefix").map((b) => b.node_id),
    ),
  );
  for (const [nodeId, node] of Object.entries(graph)) {
    if (typeof node.inputs.filename_prefix === "string" && !boundPrefixes.has(nodeId))
      node.inputs.filename_prefix = `mcp/${promptId.slice(0, 8)}`;
  }
  const params = Object.fromEntries(workflow.params.map((param) => [param.name, values[param.name] as Scalar]));
  // Uploaded inputs live on this backend only: such a job cannot simply be re-sent elsewhere.
  if (request.resubmit && hasMedia)
    notes.push("resubmit_if_backend_lost is ignored: this job's input media live on its backend only.");
  const submitted = await tools.studio.submit(
    {
      prompt_id: promptId,
      workflow_id: workflow.id,
      tool: request.tool,
      graph,
      params,
      session: tools.session,
      backend: decision.backend,
      routing,
      resubmit: Boolean(request.resubmit) && !hasMedia,
      movable: request.backend === undefined && !hasMedia,
    },
    quota,
  );
  if (!submitted.ok) return refusedJob(submitted.error);

  const waitMs = request.waitSeconds !== undefined ? request.waitSeconds * 1000 : tools.config.waitMs;
  const { job } = await waitForJob(tools, ctx, promptId, waitMs, Date.parse(submitted.job.created_at));
  const current = job ?? submitted.job;
  const message = [describeJob(current), ...notes].join(" ");
  if (current.status === "failed" || current.status === "lost" || current.status === "cancelled") {
    return failure(message, {
      job_id: current.job_id,
      status: current.status,
      backend: current.backend,
      error: current.error,
    });
  }
  const reason = tools.backends.multiple ? { backend_reason: decision.reason } : {};
  return success(
    { ...(await jobResult(tools, current, message)), param_sources: sources, ...reason, ...request.extra },
    assetLinks(current),
  );
}

/** A job the studio refused (quota, unknown backend) or ComfyUI refused at submission: its kind, and a quota's numbers. */
function refusedJob(error: JobError): CallToolResult {
  const quota = ["limit", "variable", "retry_after_seconds"].filter((key) => error[key] !== undefined);
  return failure(error.message, { kind: error.kind, ...Object.fromEntries(quota.map((key) => [key, error[key]])) });
}

function hasQuota(quota: { openJobs: Limit; jobsPerMinute: Limit }): boolean {
  return quota.openJobs.value !== null || quota.jobsPerMinute.value !== null;
}

function render(workflow: WorkflowDefinition, values: Record<string, unknown>): ComfyGraph {
  try {
    return renderGraph(workflow.graph, workflow.params, values);
  } catch (error) {
    if (error instanceof RenderError) throw new ToolFailure(error.message);
    throw error;
  }
}

/** The graph as it would be rendered, with media inputs left empty (not uploaded yet). */
function renderWithoutMedia(workflow: WorkflowDefinition, values: Record<string, unknown>): ComfyGraph {
  const media = workflow.params.filter((param) => MEDIA_TYPES.has(param.type));
  return render(workflow, { ...values, ...Object.fromEntries(media.map((param) => [param.name, ""])) });
}

/**
 * What the graph needs from a backend: media inputs are left out (they are uploaded to whichever
 * backend runs it) and defaults the gateway may swap are soft.
 */
function routeRequest(
  workflow: WorkflowDefinition,
  graph: ComfyGraph,
  sources: Record<string, ValueSource>,
): RouteRequest {
  const keys = (params: ParamSpec[]) =>
    new Set(params.flatMap((param) => param.bindings.map((b) => `${b.node_id}.${b.input}`)));
  const media = workflow.params.filter((param) => MEDIA_TYPES.has(param.type));
  const soft = keys(workflow.params.filter((param) => SWAPPABLE_SOURCES.has(sources[param.name]!)));
  return { requirements: graphRequirements(graph, keys(media), soft), tags: workflow.backendTags };
}

/**
 * One backend needs no coordinator round trip; several are routed by it. Replayed media (regenerate)
 * exist only where the original ran, so such a job stays there.
 */
async function chooseBackend(
  tools: ToolContext,
  routing: RouteRequest,
  pin: string | undefined,
  home: { backend?: string; pinned: boolean },
): Promise<RouteDecision> {
  const { backends } = tools;
  if (!backends.multiple) {
    const only = backends.names[0]!;
    if (pin !== undefined && pin !== only)
      return {
        ok: false,
        kind: "unknown_backend",
        message: `There is no backend named '${pin}'. This gateway has one: '${only}'.`,
      };
    return { ok: true, backend: only, reason: "the only backend" };
  }
  if (home.pinned && home.backend && pin === undefined) {
    const decision = await backends.coordinator.route({ ...routing, pin: home.backend });
    if (decision.ok || decision.kind === "unknown_backend") return decision;
    return {
      ...decision,
      message: `${decision.message} (This job replays input media that live on '${home.backend}'; pass the media again to run it elsewhere.)`,
    };
  }
  return backends.coordinator.route({
    ...routing,
    ...(pin !== undefined && { pin }),
    ...(home.backend && { prefer: home.backend }),
  });
}

/** Where the job's inputs already are: the backend of an input asset, or of the job regenerate replays. */
async function inputsHome(
  tools: ToolContext,
  request: RunRequest,
  values: Record<string, unknown>,
  sources: Record<string, ValueSource>,
): Promise<{ backend?: string; pinned: boolean }> {
  if (!tools.backends.multiple) return { pinned: false };
  for (const param of request.workflow.params.filter((p) => MEDIA_TYPES.has(p.type))) {
    if (sources[param.name] === "replayed") return { backend: request.preferBackend, pinned: true };
    const value = String(values[param.name]).trim();
    const asset = ASSET_ID.test(value) ? await tools.studio.getAsset(value.toLowerCase()) : undefined;
    if (asset) return { backend: asset.backend, pinned: false };
  }
  return { backend: request.preferBackend, pinned: false };
}

interface Filled {
  values: Record<string, unknown>;
  sources: Record<string, ValueSource>;
}

async function fillParameters(tools: ToolContext, request: RunRequest): Promise<Filled> {
  const { workflow } = request;
  // runtime > persisted > env > built-in, as get_defaults shows them; the workflow's own default
  // slots in just above built-in.
  const defaults = effectiveDefaults(tools.env, await tools.studio.defaultsLayers(), workflow.namespace);
  const values: Record<string, unknown> = {};
  const sources: Record<string, ValueSource> = {};
  const missing: ParamSpec[] = [];

  for (const param of workflow.params) {
    const given = request.values[param.name];
    if (given !== undefined && given !== null) [values[param.name], sources[param.name]] = [given, "call"];
    else if (request.replayed?.[param.name] !== undefined)
      [values[param.name], sources[param.name]] = [request.replayed[param.name], "replayed"];
    else if (defaults.values[param.name] !== undefined && defaults.sources[param.name] !== "built-in")
      [values[param.name], sources[param.name]] = [defaults.values[param.name], defaults.sources[param.name]!];
    else if (param.default !== undefined) [values[param.name], sources[param.name]] = [param.default, "workflow"];
    else if (/seed$/.test(param.name) && param.type === "int")
      [values[param.name], sources[param.name]] = [randomSeed(), "random"];
    else if (defaults.values[param.name] !== undefined)
      [values[param.name], sources[param.name]] = [defaults.values[param.name], "built-in"];
    else missing.push(param);
  }
  if (missing.length > 0) {
    const list = missing.map((param) => `${param.name} (${param.type}: ${param.description})`).join("; ");
    throw new ToolFailure(
      `Missing value for parameter(s) of workflow '${workflow.id}': ${list}. Pass them as arguments.`,
    );
  }
  return { values, sources };
}

/**
 * On the chosen backend: input media uploaded there (or read in place), and every combo value
 * checked against its live lists. Returns notes for the agent (a model default swapped).
 */
async function prepareValues(
  tools: ToolContext,
  comfy: ComfyClient,
  workflow: WorkflowDefinition,
  values: Record<string, unknown>,
  sources: Record<string, ValueSource>,
  maxImageSide: Limit,
  signal: AbortSignal,
): Promise<string[]> {
  const notes: string[] = [];
  for (const param of workflow.params) {
    const value = values[param.name];
    // Defaults from the environment or built-ins are checked like the caller's values.
    if (sources[param.name] !== "call" && !["image", "audio", "video"].includes(param.type)) {
      const problem = checkValue(param, value);
      if (problem)
        throw new ToolFailure(
          `The ${sources[param.name]} default of '${param.name}' (${JSON.stringify(value)}) ${problem}. Fix the default or pass '${param.name}'.`,
        );
    }
    if (param.type === "image" || param.type === "audio" || param.type === "video") {
      if (sources[param.name] === "replayed") continue; // already a file ComfyUI has
      const classes = param.bindings.map((binding) => workflow.graph[binding.node_id]?.class_type ?? "");
      const media = {
        comfy,
        source: (asset: AssetView) => tools.backends.client(asset.backend),
        getAsset: (id: string) => tools.studio.getAsset(id),
        // No media URL may point the gateway at one of its own ComfyUI backends (SSRF).
        backendUrls: tools.config.backends.map((backend) => backend.baseUrl),
        trustedOrigins: tools.config.fetchAllowOrigins,
        signal,
        maxImageSide,
      };
      values[param.name] = await resolveMedia(media, param, String(value), classes);
      continue;
    }
    const note = await checkCombos(comfy, workflow, param, values, sources[param.name]!, signal);
    if (note) notes.push(note);
  }
  return notes;
}

/**
 * Where a parameter feeds a combo input, its value must be one ComfyUI offers. A model default
 * that is not installed falls back to the first installed file (and says so); anything else is
 * an error listing the valid values.
 */
async function checkCombos(
  comfy: ComfyClient,
  workflow: WorkflowDefinition,
  param: ParamSpec,
  values: Record<string, unknown>,
  source: ValueSource,
  signal: AbortSignal,
): Promise<string | undefined> {
  for (const binding of param.bindings) {
    const classType = workflow.graph[binding.node_id]?.class_type;
    if (!classType) continue;
    let options = await comboOptions(comfy, classType, binding.input, signal);
    if (!options || options.includes(String(values[param.name]))) continue;
    forgetCombos(comfy, classType); // maybe just installed: look again before refusing
    options = await comboOptions(comfy, classType, binding.input, signal);
    if (!options || options.includes(String(values[param.name]))) continue;
    const folder = MODEL_FOLDER_OF[`${classType}.${binding.input}`];
    const value = String(values[param.name]);
    if (folder && options.length === 0) {
      throw new ToolFailure(
        `ComfyUI has no ${folder} models installed, so '${param.name}' cannot be '${value}'. Put the model file in ComfyUI's models/${folder} folder, then retry.`,
      );
    }
    if (folder && (source === "workflow" || source === "built-in" || source === "env")) {
      values[param.name] = options[0];
      return `The default ${param.name} '${value}' (${source}) is not installed; used '${options[0]}'. Pass '${param.name}' or set COMFY_MCP_DEFAULT_${workflow.namespace.toUpperCase()}_${param.name.toUpperCase()} to choose.`;
    }
    const shown = options.slice(0, 25).join(", ") + (options.length > 25 ? `, … (${options.length} in all)` : "");
    const hint = folder ? ` Call list_models with kind='${folder}' to see them all.` : "";
    const what = folder ? `Model '${value}' is not installed in ComfyUI` : `'${value}' is not a valid ${param.name}`;
    throw new ToolFailure(`${what} (${classType}.${binding.input}). Valid values: ${shown}.${hint}`, {
      parameter: param.name,
      value,
      valid: options.slice(0, 100),
    });
  }
  return undefined;
}
