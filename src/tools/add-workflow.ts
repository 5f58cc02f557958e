/**
 * add_workflow and remove_workflow (scope admin): any saved ComfyUI workflow becomes a tool from
 * the chat. The workflow arrives inline or by URL, in the UI format (converted with the backends'
 * live /object_info) or the API format; parameters come from the caller's map or are proposed;
 * the graph is checked against every backend in one answer; then it is stored in R2, where the
 * registry picks it up (no redeploy). Nothing is stored when no backend could run it.
 */
import type { McpServer } from "@modelcontextprotocol/server";
import * as z from "zod/v4";
import type { ComfyGraph } from "../comfy/types";
import { ToolFailure } from "../mcp/results";
import { readBounded } from "../net/bounded-body";
import { checkPublicUrl } from "../net/public-url";
import { askAll } from "../pool/ask";
import { parseWorkflow, type ParseResult } from "../workflows/definition.ts";
import { discoverParams, normaliseName, type ParamType } from "../workflows/params.ts";
import { planParameters, type Proposal, toWorkflowFile } from "../workflows/proposals.ts";
import { loadCatalogue, type WorkflowCatalogue } from "../workflows/registry";
import { removeStoredWorkflow, storeWorkflow } from "../workflows/store";
import { convertUiWorkflow, detectFormat, inputsOf, type ObjectInfo } from "../workflows/ui-format.ts";
import { isMediaInput, type GraphValidation, validateAgainst } from "../workflows/validate-graph.ts";
import { requireScope, type ToolContext } from "./context";
import { runTool } from "./run";

/** A workflow file is small; anything bigger is a mistake (the registry reads at most this). */
const MAX_WORKFLOW_BYTES = 2_000_000;
const FETCH_TIMEOUT_MS = 15_000;
const MAX_REDIRECTS = 3;
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

const addWorkflowInput = z.object({
  workflow: z
    .union([z.record(z.string(), z.unknown()), z.string().max(MAX_WORKFLOW_BYTES)])
    .optional()
    .describe("The workflow JSON, object or text."),
  url: z.string().max(2000).optional().describe("Or its https URL."),
  workflow_id: z.string().max(100).optional().describe("Default: from name or URL."),
  name: z.string().max(200).optional().describe("Title."),
  description: z.string().max(1000).optional().describe("What it makes."),
  parameters: z
    .record(z.string(), z.string().max(200))
    .optional()
    .describe('{name: "node_id.input"}; default: proposed.'),
  replace: z.boolean().optional().describe("Overwrite an added one of that id."),
});

const addWorkflowOutput = z
  .object({ workflow_id: z.string(), tool: z.string() })
  .describe("Also format, parameters, notes, backends, message.");

const removeWorkflowInput = z.object({ workflow_id: z.string().min(1).max(100).describe("An added workflow's id.") });
const removeWorkflowOutput = z.object({ workflow_id: z.string(), removed: z.boolean(), message: z.string() });

const ADMIN = { destructiveHint: false, openWorldHint: true } as const;

export function registerWorkflowAdminTools(server: McpServer, tools: ToolContext, catalogue: WorkflowCatalogue): void {
  server.registerTool(
    "add_workflow",
    {
      title: "Add a workflow",
      description:
        "Make a saved ComfyUI workflow (UI or API format, inline or by URL) a tool, checked on every backend.",
      inputSchema: addWorkflowInput,
      outputSchema: addWorkflowOutput,
      annotations: ADMIN,
    },
    (args, ctx) => runTool(() => addWorkflow(tools, catalogue, args, ctx.mcpReq.signal)),
  );

  server.registerTool(
    "remove_workflow",
    {
      title: "Remove an added workflow",
      description: "Remove a workflow added with add_workflow; bundled ones stay.",
      inputSchema: removeWorkflowInput,
      outputSchema: removeWorkflowOutput,
      annotations: { destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    ({ workflow_id }) =>
      runTool(async () => {
        requireScope(tools, "admin");
        const known = catalogue.workflows.find((w) => w.id === workflow_id || w.tool === workflow_id);
        if (known?.source === "bundled")
          throw new ToolFailure(
            `'${workflow_id}' is bundled with the gateway (workflows/${known.id}.json); only workflows added with add_workflow can be removed.`,
          );
        const bucket = requireBucket(tools);
        const id = known?.id ?? workflow_id;
        if (!(await removeStoredWorkflow(bucket, id)))
          throw new ToolFailure(`No added workflow '${workflow_id}'; list_workflows shows them (source "r2").`);
        return {
          workflow_id: id,
          removed: true,
          message: `Removed '${id}'; its tool disappears from tools/list now here, and within 30 s everywhere.`,
        };
      }),
  );
}

type AddArgs = z.infer<typeof addWorkflowInput>;

async function addWorkflow(tools: ToolContext, catalogue: WorkflowCatalogue, args: AddArgs, signal: AbortSignal) {
  requireScope(tools, "admin");
  const bucket = requireBucket(tools);
  if ((args.workflow === undefined) === (args.url === undefined))
    throw new ToolFailure("Give the workflow either inline ('workflow') or by 'url', not both and not neither.");
  const json = args.url !== undefined ? await fetchWorkflow(tools, args.url, signal) : readInline(args.workflow!);
  const format = detectFormat(json);
  if (typeof format !== "string") throw new ToolFailure(`This is not a ComfyUI workflow: ${format.problem}.`);

  const schemas = await backendSchemas(tools, signal);
  const merged = mergeSchemas(schemas);
  const notes: string[] = [];
  let graph: ComfyGraph;
  if (format === "ui") {
    const converted = convertUiWorkflow(json, merged);
    if (!converted.ok) throw new ToolFailure(refusalText(converted.problem, schemas), { refusals: converted.refusals });
    graph = converted.graph;
    notes.push(...converted.notes);
  } else {
    graph = json as ComfyGraph;
  }

  const id = chooseId(args, catalogue);
  const existing = catalogue.workflows.find((w) => w.id === id);
  if (existing?.source === "bundled")
    throw new ToolFailure(`'${id}' is a bundled workflow; choose another workflow_id.`);

  // Each backend checks the graph with the template's values (its own PARAM_ placeholders, if it
  // has any, are skipped: they are filled at run time).
  const placeholders = discoverParams(graph);
  const proposals =
    placeholders.length > 0
      ? []
      : args.parameters
        ? mappedParameters(graph, merged, args.parameters)
        : proposedParameters(graph, merged, notes);
  if (placeholders.length > 0)
    notes.push(`Kept the workflow's own PARAM_ placeholders: ${placeholders.map((p) => p.name).join(", ")}.`);
  const seed = proposals.find((proposal) => proposal.name === "seed");
  if (seed) notes.push(`seed is random on every call unless given (the workflow had ${JSON.stringify(seed.default)}).`);

  const checks = schemas.map((backend) =>
    backend.ok
      ? { name: backend.backend, validation: validateAgainst(graph, backend.value) }
      : { name: backend.backend, unreachable: backend.error },
  );
  const runnable = checks.filter((check) => check.validation?.ok);
  const report = checks.map((check) => backendReport(check.name, check.validation, check.unreachable));
  if (runnable.length === 0) throw new ToolFailure(unrunnableText(checks), { backends: report });

  const file = toWorkflowFile(id, graph, proposals);
  const meta: Record<string, unknown> = {
    ...(placeholders.length > 0 ? {} : file.meta),
    ...(args.name && { name: args.name }),
    ...(args.description && { description: args.description }),
    added: { by: tools.principal, at: new Date().toISOString(), from: args.url ?? "inline" },
  };
  const parsed: ParseResult = parseWorkflow({ id, graph: file.graph, meta, source: "r2" });
  if (!parsed.ok) throw new ToolFailure(`The workflow cannot become a tool: ${parsed.problem}.`);
  const stored = await storeWorkflow(bucket, { id, graph: file.graph, meta }, args.replace ?? false);
  if (!stored.ok)
    throw new ToolFailure(
      `A workflow '${id}' was already added; pass replace: true to overwrite it, or choose another workflow_id.`,
    );

  const reloaded = await loadCatalogue(tools.env, catalogue.reserved);
  const tool = reloaded.workflows.find((w) => w.id === id)?.tool ?? normaliseName(id);
  const params = parsed.workflow.params.map((param) => ({
    name: param.name,
    type: param.type,
    required: param.required,
    ...(param.default !== undefined && { default: param.default }),
    node_id: param.bindings[0]?.node_id,
    input: param.bindings[0]?.input,
    bindings: param.bindings.map((binding) => `${binding.node_id}.${binding.input}`),
  }));
  const cannot = checks.filter((check) => !check.validation?.ok).map((check) => check.name);
  return {
    workflow_id: id,
    tool,
    format,
    stored: true,
    replaced: stored.replaced,
    parameters: params,
    notes,
    backends: report,
    message:
      `Added '${id}' as the tool ${tool} (${params.length} parameter${params.length === 1 ? "" : "s"}: ${params.map((p) => p.name).join(", ") || "none"}). ` +
      (cannot.length ? `It cannot run on ${cannot.join(", ")} (see backends). ` : "") +
      "Clients see it in their next tools/list; run_workflow runs it by id at once.",
  };
}

function requireBucket(tools: ToolContext): R2Bucket {
  const bucket = tools.env.ASSETS_BUCKET;
  if (!bucket)
    throw new ToolFailure(
      "Added workflows are stored in the R2 bucket, and this gateway has none bound (ASSETS_BUCKET in wrangler.toml; README, 'R2 and publishing').",
    );
  return bucket;
}

function readInline(workflow: Record<string, unknown> | string): unknown {
  if (typeof workflow !== "string") return workflow;
  try {
    return JSON.parse(workflow);
  } catch (error) {
    throw new ToolFailure(
      `'workflow' is text but not JSON (${error instanceof Error ? error.message : String(error)}); paste the file's contents as they are.`,
    );
  }
}

/** The workflow file at a public https URL (the SSRF rules of every fetch a caller can aim). */
async function fetchWorkflow(tools: ToolContext, url: string, signal: AbortSignal): Promise<unknown> {
  const backendUrls = tools.config.backends.map((backend) => backend.baseUrl);
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    checkPublicUrl({ name: "url" }, current, backendUrls, tools.config.fetchAllowOrigins);
    let response: Response;
    try {
      response = await fetch(current, {
        redirect: "manual",
        headers: { Accept: "application/json" },
        signal: AbortSignal.any([signal, AbortSignal.timeout(FETCH_TIMEOUT_MS)]),
      });
    } catch (error) {
      throw new ToolFailure(
        `Could not download ${current} (${error instanceof Error ? error.message : String(error)}).`,
      );
    }
    const location = response.headers.get("Location");
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      current = new URL(location, current).toString();
      continue;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new ToolFailure(`Downloading ${current} failed with HTTP ${response.status}.`);
    }
    const text = await boundedText(response);
    try {
      return JSON.parse(text);
    } catch {
      throw new ToolFailure(
        `${current} is not JSON${/^\s*</.test(text) ? " (it is an HTML page: link the raw file, e.g. raw.githubusercontent.com)" : ""}.`,
      );
    }
  }
  throw new ToolFailure(`${url} redirects too many times.`);
}

async function boundedText(response: Response): Promise<string> {
  const body = await readBounded(response, MAX_WORKFLOW_BYTES);
  if (!body.ok) throw new ToolFailure(`The workflow is larger than ${MAX_WORKFLOW_BYTES} bytes.`);
  return new TextDecoder().decode(body.bytes);
}

type SchemaAnswer = Awaited<ReturnType<typeof askAll<ObjectInfo>>>[number];

/** Every backend's live node schemas; when none answers, the first error says how to bring one back. */
async function backendSchemas(tools: ToolContext, signal: AbortSignal): Promise<SchemaAnswer[]> {
  try {
    return await askAll(
      tools.backends.all(),
      async (comfy) => (await comfy.allObjectInfo({ signal })) as unknown as ObjectInfo,
    );
  } catch (error) {
    throw new ToolFailure(
      `No ComfyUI backend answered /object_info, which add_workflow needs to convert and check a workflow: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/** One schema per class for conversion: the first backend (in configuration order) that has it. */
function mergeSchemas(answers: SchemaAnswer[]): ObjectInfo {
  const merged: ObjectInfo = {};
  for (const answer of answers) {
    if (!answer.ok) continue;
    for (const [name, schema] of Object.entries(answer.value)) if (!(name in merged)) merged[name] = schema;
  }
  return merged;
}

function refusalText(problem: string, schemas: SchemaAnswer[]): string {
  const backends = schemas.map((answer) => (answer.ok ? answer.backend : `${answer.backend} (unreachable)`));
  return `The workflow cannot be converted: ${problem} Backends asked: ${backends.join(", ")}. Nothing was stored.`;
}

function chooseId(args: AddArgs, catalogue: WorkflowCatalogue): string {
  const fromUrl = args.url
    ? decodeURIComponent(new URL(args.url).pathname.split("/").pop() ?? "").replace(/\.json$/i, "")
    : "";
  const candidate = args.workflow_id ?? (args.name ? normaliseName(args.name) : fromUrl) ?? "";
  const id = candidate || `workflow_${catalogue.workflows.length + 1}`;
  if (!ID_PATTERN.test(id))
    throw new ToolFailure(
      `workflow_id '${id.slice(0, 120)}' must be letters, digits, '_', '-' or '.' (at most 100, starting with a letter or digit).`,
    );
  return id;
}

/** The caller's map: each name bound to a node input, its current value as default. */
function mappedParameters(graph: ComfyGraph, schemas: ObjectInfo, map: NonNullable<AddArgs["parameters"]>): Proposal[] {
  return Object.entries(map).map(([rawName, entry]) => {
    const name = normaliseName(rawName);
    const dot = entry.lastIndexOf(".");
    if (dot <= 0) throw new ToolFailure(`parameters.${rawName}: '${entry}' must be "node_id.input", e.g. "3.seed".`);
    const target = { node_id: entry.slice(0, dot), input: entry.slice(dot + 1) };
    const node = graph[target.node_id];
    if (!node)
      throw new ToolFailure(
        `parameters.${rawName}: the converted workflow has no node '${target.node_id}' (nodes: ${Object.keys(graph).slice(0, 40).join(", ")}).`,
      );
    if (!(target.input in node.inputs))
      throw new ToolFailure(
        `parameters.${rawName}: node ${target.node_id} (${node.class_type}) has no input '${target.input}' (inputs: ${Object.keys(node.inputs).join(", ")}).`,
      );
    const current = node.inputs[target.input];
    if (Array.isArray(current))
      throw new ToolFailure(
        `parameters.${rawName}: ${target.node_id}.${target.input} is fed by a link, not a value; bind the input that holds the value.`,
      );
    return {
      name,
      node_id: target.node_id,
      input: target.input,
      default: current,
      type: parameterType(schemas, node.class_type, target.input, current),
      bindings: [{ node_id: target.node_id, input: target.input }],
    };
  });
}

function parameterType(schemas: ObjectInfo, classType: string, input: string, value: unknown): ParamType {
  const spec = schemas[classType] ? inputsOf(schemas[classType]!).find((i) => i.name === input) : undefined;
  if (spec && isMediaInput(spec)) {
    const upload = JSON.stringify(spec.options ?? {});
    return upload.includes("audio") ? "audio" : upload.includes("video") ? "video" : "image";
  }
  if (spec?.type === "INT") return "int";
  if (spec?.type === "FLOAT") return "float";
  if (spec?.type === "BOOLEAN") return "bool";
  if (typeof value === "number") return Number.isInteger(value) ? "int" : "float";
  if (typeof value === "boolean") return "bool";
  return "str";
}

function proposedParameters(graph: ComfyGraph, schemas: ObjectInfo, notes: string[]): Proposal[] {
  const plan = planParameters(graph, schemas);
  for (const reason of plan.needsMap) notes.push(`Not proposed: ${reason} Give 'parameters' to choose.`);
  return plan.proposals;
}

function backendReport(name: string, validation?: GraphValidation, unreachable?: string) {
  if (!validation)
    return { name, ok: false, missing_nodes: [], missing_models: [], problems: [`unreachable: ${unreachable}`] };
  return {
    name,
    ok: validation.ok,
    missing_nodes: [
      ...new Set(validation.problems.filter((p) => p.kind === "unknown_class").map((p) => p.class_type ?? "")),
    ],
    missing_models: [...new Set(validation.missingModels.map((m) => m.value))],
    problems: validation.problems.filter((p) => p.kind !== "unknown_class").map((p) => p.message),
  };
}

/** One answer for the case where no backend can run it: what each one lacks. */
function unrunnableText(checks: { name: string; validation?: GraphValidation; unreachable?: string }[]): string {
  const lines = checks.map((check) => {
    if (!check.validation) return `- ${check.name}: unreachable (${check.unreachable})`;
    const missing = check.validation.problems.filter((p) => p.kind === "unknown_class");
    const other = check.validation.problems.filter((p) => p.kind !== "unknown_class");
    const parts = [
      ...(missing.length ? [`lacks ${missing.map((p) => `${p.class_type} (node ${p.node_id})`).join(", ")}`] : []),
      ...other.slice(0, 5).map((p) => p.message),
    ];
    return `- ${check.name}: ${parts.join("; ")}`;
  });
  const nodesMissing = checks.some((check) => check.validation?.problems.some((p) => p.kind === "unknown_class"));
  return (
    `No backend can run this workflow, so nothing was stored:\n${lines.join("\n")}` +
    (nodesMissing ? "\nInstall the missing custom nodes on a backend (ComfyUI Manager), then add it again." : "")
  );
}
